//! The seeded violations: which kinds each fits and how long its condition takes to hold.

use super::catalog::{DAY, HOUR, Kind};

/// The seeded violations, one per rule of CONTRACT.md §3, and how each is staged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Rule {
    /// NHI-ROT-001: the primary static secret is never rotated.
    Rot001,
    /// NHI-ROT-002: an API client switches to an `oauth_token` issued without `expires`.
    Rot002,
    /// NHI-JIT-001: one task's `jit_token` (1 h expiry) is not revoked after the task.
    Jit001,
    /// NHI-STALE-001: a backup `api_key` is never used (rotated every 60–75 days).
    Stale001,
    /// NHI-STALE-002: a batch job stops; its grants are trimmed but the key stays.
    Stale002,
    /// NHI-SCOPE-001: one agent tool call also exercises a never-approved scope.
    Scope001,
    /// NHI-SCOPE-002: a never-approved scope is granted (and revoked 60–85 days later).
    Scope002,
    /// NHI-SCOPE-003: an extra approved scope is granted and never exercised.
    Scope003,
    /// NHI-ORPH-001: a contractor custodian departs and nobody is reassigned.
    Orph001,
    /// NHI-ORPH-002: a linked vendor is offboarded while the integration keeps its access.
    Orph002,
    /// NHI-OFF-001: a revoked key is still used by a straggler job.
    Off001,
    /// NHI-OFF-002: offboarding revokes the grants but forgets the static secret.
    Off002,
    /// NHI-GOV-001: the first batch job runs hours before the approval lands.
    Gov001,
    /// NHI-GOV-002: never recertified after the initial approval.
    Gov002,
    /// NHI-GOV-003: never assigned an owner or custodian.
    Gov003,
    /// NHI-PRIV-001: a restricted tool is called without a JIT token or approval.
    Priv001,
    /// NHI-SHARE-001: one key is used from three workloads within a minute.
    Share001,
    /// NHI-ENV-001: one secret is used in two environments within a minute.
    Env001,
}

impl Rule {
    #[rustfmt::skip]
    pub(super) const ALL: [Rule; 18] = [
        Rule::Rot001, Rule::Rot002, Rule::Jit001, Rule::Stale001, Rule::Stale002, Rule::Scope001,
        Rule::Scope002, Rule::Scope003, Rule::Orph001, Rule::Orph002, Rule::Off001, Rule::Off002,
        Rule::Gov001, Rule::Gov002, Rule::Gov003, Rule::Priv001, Rule::Share001, Rule::Env001,
    ];

    #[rustfmt::skip]
    pub(super) fn id(self) -> &'static str {
        [
            "NHI-ROT-001", "NHI-ROT-002", "NHI-JIT-001", "NHI-STALE-001", "NHI-STALE-002",
            "NHI-SCOPE-001", "NHI-SCOPE-002", "NHI-SCOPE-003", "NHI-ORPH-001", "NHI-ORPH-002",
            "NHI-OFF-001", "NHI-OFF-002", "NHI-GOV-001", "NHI-GOV-002", "NHI-GOV-003",
            "NHI-PRIV-001", "NHI-SHARE-001", "NHI-ENV-001",
        ][self as usize]
    }

    /// Kinds whose ordinary behaviour the violation can be grafted onto.
    pub(super) fn kinds(self) -> &'static [Kind] {
        use Kind::*;
        match self {
            Rule::Rot001 | Rule::Off002 | Rule::Env001 => &[ServiceAccount, ApiClient],
            Rule::Rot002 => &[ApiClient],
            Rule::Jit001 | Rule::Scope001 | Rule::Priv001 => &[Agent],
            Rule::Stale001 | Rule::Stale002 | Rule::Off001 | Rule::Gov001 | Rule::Share001 => {
                &[ServiceAccount]
            }
            Rule::Orph002 => &[ApiClient, Agent],
            _ => &Kind::ALL,
        }
    }

    /// Time from the seeded cause until the condition holds (default thresholds, some slack).
    pub(super) fn threshold(self) -> i64 {
        match self {
            Rule::Rot001 | Rule::Stale002 | Rule::Scope003 | Rule::Gov002 => 90 * DAY,
            Rule::Stale001 => 45 * DAY,
            Rule::Gov003 => 7 * DAY,
            Rule::Scope002 => DAY,
            Rule::Jit001 | Rule::Off002 => 2 * HOUR,
            _ => 0,
        }
    }

    /// The cause is the identity's own setup, so the period must cover setup + threshold.
    pub(super) fn anchored(self) -> bool {
        matches!(
            self,
            Rule::Rot001
                | Rule::Stale001
                | Rule::Scope003
                | Rule::Gov001
                | Rule::Gov002
                | Rule::Gov003
        )
    }
}
