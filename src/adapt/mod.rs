//! Adapters (contract §7): real-world audit records to the §1 events.
//!
//! Each source has one module holding a pure mapping from one record to zero or more
//! events, or a [`Skip`] with a bounded [`SkipReason`]. Framing (CloudTrail `Records`
//! files, JSON arrays, JSON lines, concatenated JSON, OTLP) is done once, in [`framing`];
//! classification (restricted actions, humans, CIDR → environment, …) is configuration,
//! in [`classify`]. Every event an adapter emits is serialised to the §1 JSON and passed
//! through the same [`Decoder`] as native input, so adapted events are validated exactly
//! like native ones.
//!
//! Event ids are deterministic, `<format>:<record id>[:<n>]`, so a log read twice
//! deduplicates. Secret values (session and client tokens, token values in responses,
//! tool arguments and results) are never read into an event; skipped records are written
//! only after [`scrub`] removed every secret-named field.

pub mod classify;
pub mod cloudtrail;
pub mod credential_report;
pub mod entra;
pub mod framing;
pub mod github;
pub mod input;
pub mod inventory;
pub mod k8s;
pub mod otel;
mod out;
pub mod run;
#[cfg(test)]
mod tests;
pub mod time;
pub mod vault;

use serde_json::Value;

pub use classify::AdaptConfig;
pub use out::Out;
pub use run::{Adapted, AdaptedEvent, Counts, Skipped, adapt_bytes, sort_events};

use crate::event::Decoder;

/// A real-world input format (contract §7).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The §1 events themselves (JSON lines), not adapted.
    Nhi,
    /// AWS CloudTrail: `{"Records": [...]}` files, JSON arrays, JSON lines.
    Cloudtrail,
    /// Microsoft Entra ID audit logs (Graph `directoryAudits` or Log Analytics rows).
    EntraAudit,
    /// Kubernetes audit events (`audit.k8s.io/v1`).
    K8sAudit,
    /// HashiCorp Vault audit device (file or socket, JSON).
    VaultAudit,
    /// GitHub organisation audit log (JSON or JSON lines).
    GithubAudit,
    /// OpenTelemetry spans with the GenAI / MCP conventions (OTLP JSON, span lists).
    OtelGenai,
    /// A declared inventory (YAML or CSV): kinds, tiers, owners, approvals, departures.
    Inventory,
    /// The IAM credential report (CSV): key and password ages predating the logs.
    AwsCredentialReport,
}

impl Format {
    /// Every adapted format (all but [`Format::Nhi`]).
    pub const ADAPTED: [Format; 8] = [
        Format::Cloudtrail,
        Format::EntraAudit,
        Format::K8sAudit,
        Format::VaultAudit,
        Format::GithubAudit,
        Format::OtelGenai,
        Format::Inventory,
        Format::AwsCredentialReport,
    ];

    /// The name used on the command line, in config and in event ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Nhi => "nhi",
            Format::Cloudtrail => "cloudtrail",
            Format::EntraAudit => "entra-audit",
            Format::K8sAudit => "k8s-audit",
            Format::VaultAudit => "vault-audit",
            Format::GithubAudit => "github-audit",
            Format::OtelGenai => "otel-genai",
            Format::AwsCredentialReport => "aws-credential-report",
            Format::Inventory => "inventory",
        }
    }

    /// The `source` field of the events this format emits.
    fn source(self) -> &'static str {
        match self {
            Format::Nhi => "nhi",
            Format::Cloudtrail | Format::AwsCredentialReport => "aws",
            Format::K8sAudit => "kubernetes",
            Format::VaultAudit => "vault",
            Format::GithubAudit => "github",
            Format::OtelGenai => "otel",
            Format::EntraAudit => "entra",
            Format::Inventory => "inventory",
        }
    }
}

/// Why a record maps to no event: the bounded reasons of contract §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    NotNhi,
    ForwardedServiceCall,
    FailedRequest,
    DuplicateStage,
    UnmappedAction,
    NeedsState,
    InsufficientAuditLevel,
    MissingTime,
    UnlinkableCredential,
    ParseError,
}

impl SkipReason {
    /// Every reason, for metrics and summaries.
    pub const ALL: [SkipReason; 10] = [
        SkipReason::NotNhi,
        SkipReason::ForwardedServiceCall,
        SkipReason::FailedRequest,
        SkipReason::DuplicateStage,
        SkipReason::UnmappedAction,
        SkipReason::NeedsState,
        SkipReason::InsufficientAuditLevel,
        SkipReason::MissingTime,
        SkipReason::UnlinkableCredential,
        SkipReason::ParseError,
    ];

    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotNhi => "not_nhi",
            SkipReason::ForwardedServiceCall => "forwarded_service_call",
            SkipReason::FailedRequest => "failed_request",
            SkipReason::DuplicateStage => "duplicate_stage",
            SkipReason::UnmappedAction => "unmapped_action",
            SkipReason::NeedsState => "needs_state",
            SkipReason::InsufficientAuditLevel => "insufficient_audit_level",
            SkipReason::MissingTime => "missing_time",
            SkipReason::UnlinkableCredential => "unlinkable_credential",
            SkipReason::ParseError => "parse_error",
        }
    }
}

/// A record that maps to nothing: the reason and a short detail (an action name, a
/// field name; never a field value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Bounded reason code.
    pub reason: SkipReason,
    /// What exactly (bounded length).
    pub detail: String,
}

impl Skip {
    /// A skip with its detail, cut to 120 characters.
    pub fn new(reason: SkipReason, detail: impl Into<String>) -> Skip {
        let mut detail: String = detail.into();
        if detail.len() > 120 {
            let mut cut = 120;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        Skip { reason, detail }
    }
}

/// What one record maps to: its own id (the `<record id>` of the event ids) and events.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The record's own id (CloudTrail `eventID`, Kubernetes `auditID`, …).
    pub record_id: String,
    /// The events, in the order the record implies.
    pub events: Vec<Out>,
}

/// The result of mapping one record.
pub type MapResult = Result<Mapped, Skip>;

/// What an adapter may know beside the record: the classification config and where the
/// record came from (some sources only name their emitter in the file name).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Classification and defaults.
    pub config: &'a AdaptConfig,
    /// The input's name (file stem, or topic), for sources that only name their emitter
    /// there.
    pub input: &'a str,
}

/// Maps one framed record of `format`. Never panics on any JSON.
pub fn map_record(format: Format, record: &Value, ctx: &Context<'_>) -> MapResult {
    match format {
        Format::Nhi => Err(Skip::new(
            SkipReason::ParseError,
            "native events are not adapted",
        )),
        Format::Cloudtrail => cloudtrail::map(record, ctx),
        Format::EntraAudit => entra::map(record, ctx),
        Format::K8sAudit => k8s::map(record, ctx),
        Format::VaultAudit => vault::map(record, ctx),
        Format::GithubAudit => github::map(record, ctx),
        Format::OtelGenai => otel::map(record, ctx),
        Format::AwsCredentialReport => credential_report::map(record, ctx),
        Format::Inventory => inventory::map(record, ctx),
    }
}

/// Field names (compared lowercased, as substrings) whose values never leave an adapter,
/// not even in skipped output: tokens, secrets, passwords, private keys, tool arguments
/// and results, and the bodies of Kubernetes API objects (a Secret's `data` and
/// `stringData` under names of the user's choosing, a ConfigMap's settings).
const SCRUBBED: [&str; 13] = [
    "args",
    "token",
    "secret",
    "password",
    "privatekey",
    "credentials",
    "arguments",
    "result",
    "value",
    "requestobject",
    "responseobject",
    "stringdata",
    "binarydata",
];

/// Names (lowercased) of fields that hold secrets in the sources: an adapter copying a
/// map's entries leaves these out.
const SECRET_NAMES: [&str; 11] = [
    "secret",
    "token",
    "password",
    "value",
    "sessiontoken",
    "client_token",
    "secrettext",
    "privatekeydata",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.args",
];

/// Whether a field of this name holds a secret (see [`SECRET_NAMES`]).
pub fn is_secret_name(name: &str) -> bool {
    SECRET_NAMES.contains(&name.to_ascii_lowercase().as_str())
}

/// Removes every secret-named field (see [`SCRUBBED`]) from a record, recursively.
pub fn scrub(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| {
                let k = k.to_ascii_lowercase();
                !SCRUBBED.iter().any(|s| k.contains(s))
            });
            map.values_mut().for_each(scrub);
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// The decoder adapted events are validated with: `config`'s size limit, no future-time
/// check (replay and the service apply theirs when they read the events).
pub fn decoder(config: &crate::config::Config) -> Decoder {
    Decoder::new(config.input.max_event_bytes)
}
