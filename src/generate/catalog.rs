//! The generator's fixed vocabulary: time units, principals, vendors, operations and kinds.
//!
//! All of it is constant, so the stream depends only on the options and the seed.

/// Seconds per minute, hour and day: event times are Unix seconds.
pub(super) const MINUTE: i64 = 60;
pub(super) const HOUR: i64 = 3_600;
pub(super) const DAY: i64 = 86_400;
/// Share of identities seeded with one violation, per mille (5–10 % is the brief).
pub(super) const SEEDED_PERMILLE: u64 = 75;
/// `who` of events that name no identity (`principal.*`, `vendor.*`).
pub(super) const NOBODY: u32 = u32::MAX;
/// Scopes nobody is ever approved for, so exercising or granting one is always drift.
pub(super) const UNAPPROVED: [&str; 3] = ["iam:admin", "secrets:read", "org:admin"];
/// Owners and custodians; the first `APPROVERS` also approve and never leave.
#[rustfmt::skip]
pub(super) const PRINCIPALS: [&str; 24] = [
    "grace@corp.example", "heidi@corp.example", "ivan@corp.example", "alice@corp.example",
    "bob@corp.example", "carol@corp.example", "dave@corp.example", "erin@corp.example",
    "frank@corp.example", "judy@corp.example", "mallory@corp.example", "niaj@corp.example",
    "olivia@corp.example", "peggy@corp.example", "rupert@corp.example", "sybil@corp.example",
    "trent@corp.example", "victor@corp.example", "walter@corp.example", "wendy@corp.example",
    "yusuf@corp.example", "zoe@corp.example", "priya@corp.example", "kenji@corp.example",
];
pub(super) const APPROVERS: usize = 3;
/// Partner platforms an API client may span.
#[rustfmt::skip]
pub(super) const VENDORS: [&str; 6] = ["salesforce", "snowflake", "workday", "hubspot", "twilio", "docusign"];

/// An API operation or agent tool: (tool, scope exercised, sensitivity, vendor, drafting-safe).
pub(super) type Op = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
);

/// Gateway operations of service accounts, API clients and workloads (no tools approved).
#[rustfmt::skip]
pub(super) const API_OPS: [Op; 8] = [
    ("storage.get", "storage:read", "internal", None, false),
    ("storage.put", "storage:write", "internal", None, false),
    ("db.query", "db:read", "confidential", None, false),
    ("db.write", "db:write", "confidential", None, false),
    ("queue.publish", "queue:write", "internal", None, false),
    ("queue.consume", "queue:read", "internal", None, false),
    ("logs.write", "logs:write", "internal", None, false),
    ("metrics.push", "metrics:write", "internal", None, false),
];

/// Agent tools; the restricted ones are approved only to privileged agents (and NHI-PRIV-001).
#[rustfmt::skip]
pub(super) const AGENT_TOOLS: [Op; 11] = [
    ("kb.search", "kb:read", "public", None, true),
    ("tickets.read", "tickets:read", "internal", Some("zendesk"), true),
    ("email.draft", "email:draft", "internal", None, true),
    ("repo.read", "repo:read", "internal", Some("github"), true),
    ("tickets.reply", "tickets:write", "internal", Some("zendesk"), false),
    ("repo.comment", "repo:write", "internal", Some("github"), false),
    ("chat.post", "chat:write", "internal", Some("slack"), false),
    ("crm.lookup", "crm:read", "confidential", Some("salesforce"), false),
    ("db.query", "db:read", "confidential", None, false),
    ("payments.refund", "payments:refund", "restricted", Some("stripe"), false),
    ("customers.export", "pii:export", "restricted", None, false),
];

/// The four kinds of non-human identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    ServiceAccount,
    ApiClient,
    Agent,
    Workload,
}

/// Workflow names per kind, in `Kind` order.
#[rustfmt::skip]
pub(super) const WORKFLOWS: [[&str; 5]; 4] = [
    ["billing-export", "nightly-etl", "backup", "log-shipper", "invoice-sync"],
    ["crm-sync", "partner-portal", "mobile-backend", "webhook-relay", "hr-feed"],
    ["support-triage", "code-review", "sales-research", "incident-summary", "invoice-assistant"],
    ["payments-api", "checkout", "search-indexer", "notifier", "inventory"],
];

impl Kind {
    #[rustfmt::skip]
    pub(super) const ALL: [Kind; 4] = [Kind::ServiceAccount, Kind::ApiClient, Kind::Agent, Kind::Workload];

    /// The `kind` value of `identity.registered`, as CONTRACT.md spells it.
    pub(super) fn name(self) -> &'static str {
        ["service_account", "api_client", "ai_agent", "workload"][self as usize]
    }

    /// Short prefix of the identity's name, so a name tells its kind at a glance.
    pub(super) fn prefix(self) -> &'static str {
        ["sa", "api", "agent", "wl"][self as usize]
    }

    /// The platform that registers the identity, grants its scopes and sees its traffic.
    pub(super) fn platform(self) -> &'static str {
        ["aws", "okta", "agent-gateway", "kubernetes"][self as usize]
    }
}
