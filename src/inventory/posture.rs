//! Posture counts kept up to date as the inventory changes, so the metrics' gauges read
//! them in constant time instead of scanning every identity and credential: credentials
//! active at the watermark, and identities (not offboarded) lacking an owner pair.
//!
//! A credential is active at `now` until its end (revocation, retirement or expiry, the
//! earliest). Ends change with events and pass with time: every change re-judges the
//! credential against the time counted up to, and a future end waits in a queue until
//! the watermark passes it ([`Inventory::count_until`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{IdentityState, Inventory, Slot};
use crate::event::Micros;

/// The counts and what keeps them.
#[derive(Debug, Clone)]
pub(crate) struct Posture {
    /// The time ends are counted up to: the watermark.
    until: Micros,
    /// Tracked credentials whose end is at or before `until`, and which slots they are
    /// in (one bit per slot).
    ended: usize,
    ended_slots: Vec<u64>,
    /// Ends after `until`, by time; an entry whose credential's end has changed since is
    /// judged afresh when it comes up.
    ends: BinaryHeap<Reverse<(Micros, Slot)>>,
    /// Identities not offboarded that lack a business owner or a technical custodian.
    unpaired: usize,
}

impl Default for Posture {
    fn default() -> Self {
        Posture {
            until: Micros::MIN,
            ended: 0,
            ended_slots: Vec::new(),
            ends: BinaryHeap::new(),
            unpaired: 0,
        }
    }
}

impl Posture {
    /// Flags the credential in `slot` as ended (counted out of the active ones) or not.
    fn flag(&mut self, slot: Slot, ended: bool) {
        let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        if self.ended_slots.len() <= word {
            if !ended {
                return;
            }
            self.ended_slots.resize(word + 1, 0);
        }
        let was = self.ended_slots[word] & bit != 0;
        if was != ended {
            self.ended_slots[word] ^= bit;
            if ended {
                self.ended += 1;
            } else {
                self.ended -= 1;
            }
        }
    }
}

/// Whether `identity` counts as lacking an owner pair.
pub(crate) fn unpaired(identity: &IdentityState) -> bool {
    identity.offboarded_at.is_none()
        && (identity.business_owner.is_none() || identity.technical_custodian.is_none())
}

impl Inventory {
    /// Credentials active at the time counted up to (the watermark).
    pub fn active_credentials(&self) -> usize {
        self.credentials.len() - self.posture.ended
    }

    /// Identities not offboarded that lack a business owner or a technical custodian.
    pub fn identities_without_owner_pair(&self) -> usize {
        self.posture.unpaired
    }

    /// The two counts computed from scratch, at the time counted up to: what
    /// [`Inventory::active_credentials`] and [`Inventory::identities_without_owner_pair`]
    /// must equal (for checks; this scans everything).
    pub fn posture_from_scratch(&self) -> (usize, usize) {
        let until = self.posture.until;
        let active = self
            .credentials
            .values()
            .filter(|c| c.end().is_none_or(|e| e > until))
            .count();
        let unpaired = self.identities.values().filter(|i| unpaired(i)).count();
        (active, unpaired)
    }

    /// Counts the credential ends up to `now` (the watermark; it never goes back).
    pub fn count_until(&mut self, now: Micros) {
        if now <= self.posture.until {
            return;
        }
        self.posture.until = now;
        while let Some(&Reverse((end, slot))) = self.posture.ends.peek() {
            if end > now {
                break;
            }
            self.posture.ends.pop();
            self.end_changed(slot);
        }
    }

    /// Judges the credential in `slot` afresh after its end may have changed (or it was
    /// just tracked).
    pub(crate) fn end_changed(&mut self, slot: Slot) {
        let Some(cred) = self.credentials.at(slot) else {
            return;
        };
        let end = cred.end();
        let posture = &mut self.posture;
        let past = end.is_some_and(|e| e <= posture.until);
        posture.flag(slot, past);
        if let Some(end) = end.filter(|_| !past) {
            posture.ends.push(Reverse((end, slot)));
        }
    }

    /// Before the credential in `slot` stops being tracked (or is replaced).
    pub(crate) fn uncount(&mut self, slot: Slot) {
        self.posture.flag(slot, false);
    }

    /// Whether identity `name` lacks an owner pair now (`false` when it is not tracked).
    pub(crate) fn is_unpaired(&self, name: &str) -> bool {
        self.identities.get(name).is_some_and(|i| unpaired(i))
    }

    /// Updates the owner-pair count after identity `name` changed from `before`.
    pub(crate) fn pairing_changed(&mut self, name: &str, before: bool) {
        let after = self.is_unpaired(name);
        if after != before {
            if after {
                self.posture.unpaired += 1;
            } else {
                self.posture.unpaired -= 1;
            }
        }
    }

    /// Counts everything afresh up to `now` (after a restore).
    pub fn recount_posture(&mut self, now: Option<Micros>) {
        let now = now.unwrap_or(Micros::MIN);
        let mut posture = Posture {
            until: now,
            ..Posture::default()
        };
        for slot in 0..self.credentials.slot_count() {
            let Some(end) = self.credentials.at(slot).and_then(|c| c.end()) else {
                continue;
            };
            if end <= now {
                posture.flag(slot, true);
            } else {
                posture.ends.push(Reverse((end, slot)));
            }
        }
        posture.unpaired = self.identities.values().filter(|i| unpaired(i)).count();
        self.posture = posture;
    }
}
