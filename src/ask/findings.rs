//! The findings an instance can list (`GET /v1/findings`): every open state finding, and
//! the latest window alerts and resolved state alerts, bounded.
//!
//! Open state findings are the pipeline's own (restored with its checkpoint, so they are
//! listed after a restart too); window alerts never resolve, and resolved alerts are
//! history: of those the newest `api.findings_kept` are kept in memory, and the alert
//! topic stays the record of everything.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::alert::format::to_json;
use crate::alert::{Alert, Status};
use crate::engine::rule::{Rule, RuleKind};

/// One listed finding: its alert JSON (contract §4) as last emitted.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    alert: Value,
    /// An open state finding: kept until it resolves.
    pinned: bool,
}

/// The findings log.
#[derive(Debug, Clone)]
pub struct FindingsLog {
    /// Resolved and window findings kept at most.
    cap: usize,
    next: u64,
    by_id: HashMap<String, Entry>,
    /// Every entry's id by its sequence number (the listing order).
    order: BTreeMap<u64, String>,
    /// The sequence numbers of the entries that may be evicted, oldest first.
    evictable: BTreeSet<u64>,
    /// Sequence numbers per identity.
    by_identity: HashMap<String, BTreeSet<u64>>,
}

/// What `GET /v1/findings` filters on; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub rule: Option<String>,
    pub status: Option<Status>,
    pub identity: Option<String>,
    pub severity: Option<String>,
}

/// One page of findings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    pub findings: Vec<Value>,
    /// Matching findings in all pages.
    pub total: usize,
    /// The `cursor` of the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl FindingsLog {
    /// An empty log keeping at most `cap` resolved and window findings.
    pub fn new(cap: usize) -> Self {
        FindingsLog {
            cap,
            next: 0,
            by_id: HashMap::new(),
            order: BTreeMap::new(),
            evictable: BTreeSet::new(),
            by_identity: HashMap::new(),
        }
    }

    /// Lists the open state findings a pipeline holds (after a restore, or at the start
    /// of a replay): the moment each was detected is not kept, so theirs is null.
    pub fn seed(&mut self, open: &[Alert]) {
        for alert in open {
            let mut json = to_json(alert);
            json["detected_at"] = Value::Null;
            json["owner"] = Value::Null;
            self.insert(&alert.alert_id, &alert.identity, json, true);
        }
    }

    /// Records emitted alerts: an open state alert is listed until its resolved alert
    /// replaces it.
    pub fn record(&mut self, rules: &[Rule], alerts: &[Alert]) {
        for alert in alerts {
            let state = rules
                .get(alert.rule_index)
                .is_some_and(|r| r.kind == RuleKind::State);
            let pinned = state && alert.status == Status::Open;
            self.insert(&alert.alert_id, &alert.identity, to_json(alert), pinned);
        }
    }

    /// Records alerts already in their JSON form (a replay's output).
    pub fn record_json(&mut self, rules: &[Rule], alert: Value) {
        let text = |field: &str| alert[field].as_str().unwrap_or_default().to_owned();
        let (id, identity) = (text("alert_id"), text("identity"));
        let state = rules
            .iter()
            .find(|r| r.id == text("rule_id"))
            .is_some_and(|r| r.kind == RuleKind::State);
        let pinned = state && text("status") == "open";
        self.insert(&id, &identity, alert, pinned);
    }

    fn insert(&mut self, id: &str, identity: &str, alert: Value, pinned: bool) {
        if let Some(old) = self.by_id.remove(id) {
            self.forget(&old, identity);
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, id.to_owned());
        self.by_identity
            .entry(identity.to_owned())
            .or_default()
            .insert(seq);
        if !pinned {
            self.evictable.insert(seq);
        }
        self.by_id
            .insert(id.to_owned(), Entry { seq, alert, pinned });
        while self.evictable.len() > self.cap {
            let Some(oldest) = self.evictable.pop_first() else {
                break;
            };
            if let Some(id) = self.order.get(&oldest).cloned()
                && let Some(entry) = self.by_id.remove(&id)
            {
                let identity = entry.alert["identity"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                self.forget(&entry, &identity);
            }
        }
    }

    fn forget(&mut self, entry: &Entry, identity: &str) {
        self.order.remove(&entry.seq);
        if !entry.pinned {
            self.evictable.remove(&entry.seq);
        }
        if let Some(set) = self.by_identity.get_mut(identity) {
            set.remove(&entry.seq);
            if set.is_empty() {
                self.by_identity.remove(identity);
            }
        }
    }

    /// Drops the findings of every identity `keep` refuses (the identities of tasks that
    /// moved to another instance, which answers for them now); returns how many.
    pub fn retain_identities(&mut self, keep: impl Fn(&str) -> bool) -> usize {
        let gone: Vec<String> = self
            .by_identity
            .keys()
            .filter(|identity| !keep(identity))
            .cloned()
            .collect();
        let mut dropped = 0;
        for identity in gone {
            for seq in self.by_identity.remove(&identity).unwrap_or_default() {
                if let Some(id) = self.order.remove(&seq) {
                    self.by_id.remove(&id);
                    self.evictable.remove(&seq);
                    dropped += 1;
                }
            }
        }
        dropped
    }

    /// Findings listed now.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is listed.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The open findings of `identity` (state and window), in the order they were
    /// emitted.
    pub fn open_of(&self, identity: &str) -> Vec<Value> {
        let filter = Filter {
            status: Some(Status::Open),
            identity: Some(identity.to_owned()),
            ..Filter::default()
        };
        self.page(&filter, None, usize::MAX).findings
    }

    /// The findings matching `filter` listed after `cursor` (oldest first), at most
    /// `limit` of them.
    pub fn page(&self, filter: &Filter, cursor: Option<u64>, limit: usize) -> Page {
        let start = cursor.map_or(0, |c| c.saturating_add(1));
        let seqs: Box<dyn Iterator<Item = u64> + '_> = match &filter.identity {
            Some(identity) => Box::new(
                self.by_identity
                    .get(identity)
                    .into_iter()
                    .flat_map(|set| set.iter().copied()),
            ),
            None => Box::new(self.order.keys().copied()),
        };
        let mut findings = Vec::new();
        let mut total = 0;
        let mut last = None;
        let mut more = false;
        for seq in seqs {
            let Some(alert) = self
                .order
                .get(&seq)
                .and_then(|id| self.by_id.get(id))
                .map(|e| &e.alert)
            else {
                continue;
            };
            if !matches(filter, alert) {
                continue;
            }
            total += 1;
            if seq < start {
                continue;
            }
            if findings.len() < limit {
                findings.push(alert.clone());
                last = Some(seq);
            } else {
                more = true;
            }
        }
        Page {
            findings,
            total,
            next_cursor: if more {
                last.map(|s| s.to_string())
            } else {
                None
            },
        }
    }
}

fn matches(filter: &Filter, alert: &Value) -> bool {
    let is = |field: &str, want: &Option<String>| {
        want.as_deref()
            .is_none_or(|w| alert[field].as_str() == Some(w))
    };
    is("rule_id", &filter.rule)
        && is("identity", &filter.identity)
        && is("severity", &filter.severity)
        && filter
            .status
            .is_none_or(|s| alert["status"].as_str() == Some(s.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(id: &str, identity: &str, rule: &str, status: &str, severity: &str) -> Value {
        json!({"alert_id": id, "identity": identity, "rule_id": rule, "status": status,
               "severity": severity})
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.findings
            .iter()
            .map(|f| f["alert_id"].as_str().unwrap_or_default())
            .collect()
    }

    #[test]
    fn findings_of_identities_moved_away_are_dropped() {
        let mut log = FindingsLog::new(2);
        log.insert(
            "a",
            "svc-a",
            alert("a", "svc-a", "R1", "open", "high"),
            true,
        );
        log.insert(
            "b",
            "svc-b",
            alert("b", "svc-b", "R1", "open", "high"),
            false,
        );
        log.insert("c", "svc-b", alert("c", "svc-b", "R2", "open", "low"), true);
        assert_eq!(log.retain_identities(|identity| identity == "svc-a"), 2);
        assert_eq!(ids(&log.page(&Filter::default(), None, 10)), ["a"]);
        assert!(log.open_of("svc-b").is_empty());
        // What is left still evicts and pages as before.
        for i in 0..3 {
            let id = format!("w{i}");
            log.insert(
                &id,
                "svc-a",
                alert(&id, "svc-a", "R3", "open", "low"),
                false,
            );
        }
        assert_eq!(
            ids(&log.page(&Filter::default(), None, 10)),
            ["a", "w1", "w2"]
        );
    }

    #[test]
    fn pages_filter_and_replace_by_alert_id() {
        let mut log = FindingsLog::new(100);
        for i in 0..5 {
            let sev = if i % 2 == 0 { "high" } else { "low" };
            log.insert(
                &format!("a{i}"),
                "svc",
                alert(&format!("a{i}"), "svc", "R1", "open", sev),
                false,
            );
        }
        log.insert(
            "b",
            "other",
            alert("b", "other", "R2", "open", "high"),
            true,
        );
        let all = log.page(&Filter::default(), None, 4);
        assert_eq!(ids(&all), ["a0", "a1", "a2", "a3"]);
        assert_eq!(all.total, 6);
        let cursor = all.next_cursor.as_deref().and_then(|c| c.parse().ok());
        let rest = log.page(&Filter::default(), cursor, 4);
        assert_eq!(ids(&rest), ["a4", "b"]);
        assert_eq!(rest.next_cursor, None);

        let high = Filter {
            severity: Some("high".into()),
            identity: Some("svc".into()),
            ..Filter::default()
        };
        assert_eq!(ids(&log.page(&high, None, 10)), ["a0", "a2", "a4"]);

        // A resolved alert replaces the open one and moves to the end.
        log.insert(
            "b",
            "other",
            alert("b", "other", "R2", "resolved", "high"),
            false,
        );
        let open = Filter {
            status: Some(Status::Open),
            ..Filter::default()
        };
        assert_eq!(log.page(&open, None, 10).total, 5);
        assert_eq!(log.len(), 6);
        assert!(log.open_of("other").is_empty());
    }

    #[test]
    fn only_unpinned_findings_are_evicted() {
        let mut log = FindingsLog::new(2);
        log.insert(
            "open",
            "svc",
            alert("open", "svc", "R", "open", "high"),
            true,
        );
        for i in 0..5 {
            let id = format!("w{i}");
            log.insert(&id, "svc", alert(&id, "svc", "W", "open", "high"), false);
        }
        assert_eq!(
            ids(&log.page(&Filter::default(), None, 10)),
            ["open", "w3", "w4"]
        );
        assert_eq!(log.open_of("svc").len(), 3);
    }
}
