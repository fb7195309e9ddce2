//! Alerts (contract §4): the record, its deterministic id, and its two wire formats.

pub mod format;
pub mod lifecycle;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_128;

use crate::engine::rule::Severity;
use crate::event::Micros;

/// `open` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Open,
    Resolved,
}

impl Status {
    /// Both statuses, for metrics.
    pub const ALL: [Status; 2] = [Status::Open, Status::Resolved];

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Resolved => "resolved",
        }
    }
}

/// The owners of the identity as known when the alert was emitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub business_owner: Option<String>,
    pub technical_custodian: Option<String>,
}

/// One alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub alert_id: String,
    /// The rule's index in the loaded rule set: output order; not part of the wire format.
    pub rule_index: usize,
    pub rule_id: String,
    pub rule: String,
    pub status: Status,
    pub severity: Severity,
    pub identity: String,
    /// Entity-key fields besides identity (`credential`, `scope`, …) with their values.
    pub key: Vec<(String, String)>,
    pub opened_at: Micros,
    pub detected_at: Micros,
    pub window: Option<(Micros, Micros)>,
    /// Window rules: repeats suppressed before this alert.
    pub occurrences: Option<u64>,
    pub summary: String,
    pub evidence: Map<String, Value>,
    pub owner: Owner,
    pub frameworks: Vec<String>,
    pub remediation: String,
}

/// The deterministic id of a finding: a hash of rule id, entity key and `opened_at`.
pub fn alert_id(
    rule_id: &str,
    identity: &str,
    key: &[(String, String)],
    opened_at: Micros,
) -> String {
    let mut material = String::with_capacity(128);
    for part in [rule_id, identity] {
        material.push_str(part);
        material.push('\u{1f}');
    }
    for (field, value) in key {
        material.push_str(field);
        material.push('=');
        material.push_str(value);
        material.push('\u{1f}');
    }
    material.push_str(&opened_at.to_string());
    format!("{:032x}", xxh3_128(material.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_every_part() {
        let key = vec![("credential".to_owned(), "k1".to_owned())];
        let base = alert_id("NHI-ROT-001", "svc", &key, 5);
        assert_eq!(base, alert_id("NHI-ROT-001", "svc", &key, 5));
        assert_eq!(base.len(), 32);
        assert_ne!(base, alert_id("NHI-ROT-001", "svc", &key, 6));
        assert_ne!(base, alert_id("NHI-ROT-002", "svc", &key, 5));
        assert_ne!(base, alert_id("NHI-ROT-001", "svc", &[], 5));
        // Field separators keep `a`+`bc` apart from `ab`+`c`.
        assert_ne!(alert_id("R", "ab", &[], 1), alert_id("Ra", "b", &[], 1));
    }
}
