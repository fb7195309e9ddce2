//! Counters of one pipeline run, for the replay summary and metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::alert::Status;
use crate::event::{EventType, Reason};

/// What the pipeline has seen and done.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Records offered (accepted + rejected).
    pub read: u64,
    /// Accepted events by type (duplicates included).
    pub accepted: BTreeMap<EventType, u64>,
    /// Rejected records by reason.
    pub rejected: BTreeMap<Reason, u64>,
    /// Redelivered events ignored (same `id`).
    pub duplicates: u64,
    /// Events whose window had already closed.
    pub late: u64,
    /// Replay: events after `--as-of`, not evaluated.
    pub after_as_of: u64,
    /// Evaluations run (window closes plus final).
    pub evaluations: u64,
    /// Identity snapshots taken for state rules.
    pub snapshots: u64,
    /// Uses and calls whose activity change skipped judging (incremental evaluation).
    pub deferred: u64,
    /// Snapshots rebuilt because a deferred change could alter an alert of its batch.
    pub repaired: u64,
    /// Offboarded identities forgotten once they had held nothing for `forget_after`.
    pub forgotten: u64,
    /// Alerts emitted by (rule id, status).
    pub alerts: BTreeMap<(String, Status), u64>,
    /// Time spent in each rule's query, by rule id.
    pub rule_time: BTreeMap<String, Duration>,
}

impl Stats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Stats) {
        self.read += other.read;
        for (k, n) in &other.accepted {
            *self.accepted.entry(*k).or_default() += n;
        }
        for (k, n) in &other.rejected {
            *self.rejected.entry(*k).or_default() += n;
        }
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.after_as_of += other.after_as_of;
        self.evaluations += other.evaluations;
        self.snapshots += other.snapshots;
        self.deferred += other.deferred;
        self.repaired += other.repaired;
        self.forgotten += other.forgotten;
        for (k, n) in &other.alerts {
            *self.alerts.entry(k.clone()).or_default() += n;
        }
        for (k, t) in &other.rule_time {
            *self.rule_time.entry(k.clone()).or_default() += *t;
        }
    }

    /// Total accepted events.
    pub fn accepted_total(&self) -> u64 {
        self.accepted.values().sum()
    }

    /// Total rejected records.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Total alerts emitted.
    pub fn alerts_total(&self) -> u64 {
        self.alerts.values().sum()
    }
}
