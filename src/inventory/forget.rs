//! Forgetting (contract v2 §2.2): what ended is dropped `inventory.forget_after` later, so
//! state is bounded by what is live, not by history.
//!
//! A credential that ended (revoked, retired, expired), a completed task, and an offboarded
//! identity left holding nothing are each scheduled when they end and checked again when
//! their time comes: a credential revived since (a rotation in place with a later expiry)
//! or an identity that holds something again stays. Until then a use of an ended
//! credential still fires NHI-OFF-001; after it the credential is unknown again.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};

use super::{CredentialStatus, Inventory};
use crate::event::Micros;

/// Something that may be forgotten once its time comes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Forget {
    Credential(String),
    /// (identity, task).
    Task(String, String),
    Identity(String),
}

impl Inventory {
    /// How long after it ended something is forgotten (`None`: never).
    pub fn set_forget_after(&mut self, after: Option<Micros>) {
        self.forget_after = after;
    }

    /// Schedules `item`, which ended at `ended`, to be forgotten.
    pub(crate) fn schedule_forget(&mut self, ended: Micros, item: Forget) {
        if let Some(after) = self.forget_after {
            self.forget
                .push(Reverse((ended.saturating_add(after), item)));
        }
    }

    /// Forgets everything whose time came by `now`; returns the identities forgotten.
    pub fn forget_until(&mut self, now: Micros) -> Vec<String> {
        let Some(after) = self.forget_after else {
            return Vec::new();
        };
        let limit = now.saturating_sub(after);
        let mut forgotten = Vec::new();
        while self
            .forget
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            let Some(Reverse((_, item))) = self.forget.pop() else {
                break;
            };
            match item {
                Forget::Credential(id) => self.forget_credential(&id, limit, now),
                Forget::Task(identity, task) => self.forget_task(identity, task, limit, now),
                Forget::Identity(name) => {
                    if self.forget_identity(&name, limit, now) {
                        forgotten.push(name);
                    }
                }
            }
        }
        forgotten
    }

    /// Forgets a completed task unless an active credential was issued for it (NHI-JIT-001
    /// still needs its completion); then it is checked again later.
    fn forget_task(&mut self, identity: String, task: String, limit: Micros, now: Micros) {
        if self
            .task_completed(&identity, &task)
            .is_none_or(|t| t > limit)
        {
            return;
        }
        let in_use = self.identities.get(identity.as_str()).is_some_and(|i| {
            i.credentials.iter().any(|&slot| {
                self.credentials.at(slot).is_some_and(|c| {
                    c.task.as_deref() == Some(task.as_str())
                        && c.status_at(now) == CredentialStatus::Active
                })
            })
        });
        if in_use {
            self.schedule_forget(now, Forget::Task(identity, task));
        } else if let Some(tasks) = self.tasks_completed.get_mut(&identity) {
            tasks.remove(&task);
            if tasks.is_empty() {
                self.tasks_completed.remove(&identity);
            }
        }
    }

    fn forget_credential(&mut self, id: &str, limit: Micros, now: Micros) {
        let Some(cred) = self.credentials.get(id) else {
            return;
        };
        // Revived or re-ended later: its own later end is scheduled too.
        if cred.status_at(now) == CredentialStatus::Active || cred.end().is_none_or(|e| e > limit) {
            return;
        }
        let (owner, end) = (cred.identity.clone(), cred.end().unwrap_or(now));
        let slot = self.credentials.slot_of(id);
        // Keep its span in the owner's holding history before it goes.
        self.holding_since(&owner, now);
        if let Some(slot) = slot {
            self.uncount(slot);
        }
        self.credentials.remove(id);
        if let Some(identity) = self.identities.get_mut(&owner) {
            identity.credentials.retain(|&c| Some(c) != slot);
            if identity.offboarded_at.is_some() {
                self.schedule_forget(end, Forget::Identity(owner.to_string()));
            }
        }
    }

    /// Forgets an offboarded identity that has held nothing since `limit`; reschedules it
    /// when what it held ended too recently.
    fn forget_identity(&mut self, name: &str, limit: Micros, now: Micros) -> bool {
        let Some(identity) = self.identities.get(name) else {
            return false;
        };
        let Some(offboarded) = identity.offboarded_at.get() else {
            return false;
        };
        if !identity.grants.is_empty() {
            return false;
        }
        let mut ended = offboarded;
        for &slot in &identity.credentials {
            let Some(cred) = self.credentials.at(slot) else {
                continue;
            };
            match cred.end() {
                Some(end) if end <= now => ended = ended.max(end),
                // Still active: its end schedules the identity again.
                _ => return false,
            }
        }
        if let Some(&(_, end)) = identity.ended_spans.last() {
            ended = ended.max(end.min(now));
        }
        if ended > limit {
            self.schedule_forget(ended, Forget::Identity(name.to_owned()));
            return false;
        }
        let Some(identity) = self.identities.remove(name) else {
            return false;
        };
        for &slot in &identity.credentials {
            if let Some(id) = self.credentials.at(slot).map(|c| c.id.clone()) {
                self.uncount(slot);
                self.credentials.remove(&id);
            }
        }
        for vendor in identity.vendors.keys() {
            if let Some(set) = self.by_vendor.get_mut(vendor) {
                set.remove(name);
                if set.is_empty() {
                    self.by_vendor.remove(vendor);
                }
            }
        }
        for assignment in [&identity.business_owner, &identity.technical_custodian]
            .into_iter()
            .flatten()
        {
            if let Some(set) = self.by_principal.get_mut(&assignment.principal) {
                set.remove(name);
                if set.is_empty() {
                    self.by_principal.remove(&assignment.principal);
                }
            }
        }
        self.tasks_completed.remove(name);
        self.wake_at.remove(name);
        self.dirty.remove(name);
        true
    }
}
