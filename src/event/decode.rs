//! Decoding and validation of raw records into [`Event`]s (contract §1 and §4).
//!
//! One typed serde pass over the bytes (no `serde_json::Value`), then validation in the
//! contract's order; the first failing check gives the bounded [`Reason`]. Fields named
//! like secrets are never read into the event, and are scrubbed from dead-letter payloads.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::json;

use super::loose::Loose;
use super::time::parse_rfc3339;
use super::{
    Body, CredentialKind, Event, EventType, IdentityKind, Micros, Outcome, Sensitivity, Tier,
    ToolCall, Use,
};

/// Why a record was rejected: the bounded reason codes of contract §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    InvalidUtf8,
    TooLarge,
    InvalidJson,
    MissingField,
    UnknownType,
    InvalidField,
    FutureTime,
}

impl Reason {
    /// Every reason, for metrics initialisation and summaries.
    pub const ALL: [Reason; 7] = [
        Reason::InvalidUtf8,
        Reason::TooLarge,
        Reason::InvalidJson,
        Reason::MissingField,
        Reason::UnknownType,
        Reason::InvalidField,
        Reason::FutureTime,
    ];

    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::TooLarge => "too_large",
            Reason::InvalidJson => "invalid_json",
            Reason::MissingField => "missing_field",
            Reason::UnknownType => "unknown_type",
            Reason::InvalidField => "invalid_field",
            Reason::FutureTime => "future_time",
        }
    }
}

/// A rejected record: the reason code and a short human explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {error}", reason.as_str())]
pub struct Reject {
    /// Bounded reason code.
    pub reason: Reason,
    /// What exactly was wrong (bounded length, never a field value).
    pub error: String,
}

impl Reject {
    fn new(reason: Reason, error: impl Into<String>) -> Self {
        Reject {
            reason,
            error: error.into(),
        }
    }
}

/// Where a record came from, for its dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Topic, or the file path in a replay.
    pub topic: String,
    /// Kafka partition; `None` for files.
    pub partition: Option<i32>,
    /// Kafka offset, or the 1-based line number in a file.
    pub offset: i64,
}

/// The dead-letter record of contract §4.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Why it was rejected.
    pub reject: Reject,
    /// Where it came from.
    pub origin: Origin,
    /// The original text (lossy for invalid UTF-8), secret-named fields scrubbed, at most 64 KiB.
    pub payload: String,
}

/// Largest payload kept in a dead letter.
pub const MAX_DEAD_LETTER_PAYLOAD: usize = 64 * 1024;

/// Field names whose values must never be logged, stored or emitted.
pub const SECRET_FIELDS: [&str; 4] = ["secret", "token", "password", "value"];

impl DeadLetter {
    /// Builds the dead letter of a rejected record.
    pub fn new(reject: Reject, origin: Origin, bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let mut payload = scrub_secrets(&text).into_owned();
        if payload.len() > MAX_DEAD_LETTER_PAYLOAD {
            let mut cut = MAX_DEAD_LETTER_PAYLOAD;
            while !payload.is_char_boundary(cut) {
                cut -= 1;
            }
            payload.truncate(cut);
        }
        DeadLetter {
            reject,
            origin,
            payload,
        }
    }

    /// The JSON form published to the dead-letter output.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "reason": self.reject.reason.as_str(),
            "error": self.reject.error,
            "topic": self.origin.topic,
            "partition": self.origin.partition,
            "offset": self.origin.offset,
            "payload": self.payload,
        })
    }
}

/// Removes secret-named fields from a payload before it is emitted anywhere.
///
/// Valid JSON is re-serialised without those keys; anything else has the value after a
/// secret-named key masked textually, since a broken record may still carry a secret.
pub fn scrub_secrets(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !SECRET_FIELDS
        .iter()
        .any(|f| lower.contains(&format!("\"{f}\"")))
    {
        return Cow::Borrowed(text);
    }
    if let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) {
        remove_secret_keys(&mut value);
        return Cow::Owned(value.to_string());
    }
    Cow::Owned(mask_secret_values(text))
}

fn remove_secret_keys(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !SECRET_FIELDS.contains(&k.to_ascii_lowercase().as_str()));
            map.values_mut().for_each(remove_secret_keys);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(remove_secret_keys),
        _ => {}
    }
}

/// Masks `"secret": <value>` in text that is not valid JSON, up to the next `,` or `}`.
fn mask_secret_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let hit = SECRET_FIELDS.iter().find_map(|f| {
            let key = format!("\"{f}\"");
            lower[i..].starts_with(&key).then_some(key.len())
        });
        let Some(key_len) = hit else {
            i += 1;
            continue;
        };
        let mut j = i + key_len;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b':' {
            i += key_len;
            continue;
        }
        let start = j + 1;
        let mut end = start;
        let mut in_string = false;
        let mut escaped = false;
        while end < bytes.len() {
            let b = bytes[end];
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
            } else if b == b'"' {
                in_string = true;
            } else if b == b',' || b == b'}' {
                break;
            }
            end += 1;
        }
        out.push_str(&text[copied..start]);
        out.push_str("\"[redacted]\"");
        copied = end;
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Every field any event type may carry; unknown fields are skipped by serde.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw<'a> {
    #[serde(borrow)]
    id: Option<Loose<'a>>,
    #[serde(borrow, rename = "type")]
    kind_of_event: Option<Loose<'a>>,
    #[serde(borrow)]
    time: Option<Loose<'a>>,
    #[serde(borrow)]
    source: Option<Loose<'a>>,
    #[serde(borrow)]
    identity: Option<Loose<'a>>,
    #[serde(borrow)]
    kind: Option<Loose<'a>>,
    #[serde(borrow)]
    tier: Option<Loose<'a>>,
    #[serde(borrow)]
    name: Option<Loose<'a>>,
    #[serde(borrow)]
    workflow: Option<Loose<'a>>,
    #[serde(borrow)]
    vendors: Option<Loose<'a>>,
    #[serde(borrow)]
    business_owner: Option<Loose<'a>>,
    #[serde(borrow)]
    technical_custodian: Option<Loose<'a>>,
    #[serde(borrow)]
    approver: Option<Loose<'a>>,
    #[serde(borrow)]
    scopes: Option<Loose<'a>>,
    #[serde(borrow)]
    tools: Option<Loose<'a>>,
    #[serde(borrow)]
    reviewer: Option<Loose<'a>>,
    #[serde(borrow)]
    scope: Option<Loose<'a>>,
    #[serde(borrow)]
    vendor: Option<Loose<'a>>,
    #[serde(borrow)]
    reason: Option<Loose<'a>>,
    #[serde(borrow)]
    principal: Option<Loose<'a>>,
    #[serde(borrow)]
    credential: Option<Loose<'a>>,
    #[serde(borrow)]
    new_credential: Option<Loose<'a>>,
    #[serde(borrow)]
    expires: Option<Loose<'a>>,
    #[serde(borrow)]
    task: Option<Loose<'a>>,
    #[serde(borrow)]
    workload: Option<Loose<'a>>,
    #[serde(borrow)]
    environment: Option<Loose<'a>>,
    #[serde(borrow)]
    source_ip: Option<Loose<'a>>,
    #[serde(borrow)]
    tool: Option<Loose<'a>>,
    #[serde(borrow)]
    sensitivity: Option<Loose<'a>>,
    #[serde(borrow)]
    approval: Option<Loose<'a>>,
    #[serde(borrow)]
    session: Option<Loose<'a>>,
    #[serde(borrow)]
    outcome: Option<Loose<'a>>,
}

/// Longest event id, in characters.
const MAX_ID: usize = 256;
/// Longest identity, or any other identifier (credential, scope, tool, …), in characters.
const MAX_NAME: usize = 512;
/// Longest free-text field (`name`, `workflow`, `reason`), in characters.
const MAX_TEXT: usize = 4096;
/// Most items in a list field.
const MAX_ITEMS: usize = 1024;

/// Decodes and validates records; cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_event_bytes: usize,
    /// How far ahead of the wall clock an event's time may be (`None`: unchecked).
    max_future: Option<Micros>,
}

impl Decoder {
    /// A decoder rejecting records larger than `max_event_bytes` as `too_large`, with no
    /// limit on event times (see [`Decoder::with_max_future`]).
    pub fn new(max_event_bytes: usize) -> Self {
        Decoder {
            max_event_bytes,
            max_future: None,
        }
    }

    /// The decoder of the input settings in `config` (`input.max_event_bytes`,
    /// `input.max_future`).
    pub fn from_config(config: &crate::config::Config) -> Self {
        Decoder::new(config.input.max_event_bytes).with_max_future(config.input.max_future.0)
    }

    /// Rejects events whose time is more than `max_future` ahead of the wall clock when
    /// they are decoded as `future_time` (`None`: no limit).
    pub fn with_max_future(mut self, max_future: Option<Micros>) -> Self {
        self.max_future = max_future;
        self
    }

    /// Decodes one record, or says why it is rejected. The wall clock is read only when
    /// event times are limited (`input.max_future`).
    pub fn decode(&self, bytes: &[u8]) -> Result<Event, Reject> {
        self.decode_with(bytes, wall_clock)
    }

    /// [`Decoder::decode`] as of the wall-clock time `now`.
    pub fn decode_at(&self, bytes: &[u8], now: Micros) -> Result<Event, Reject> {
        self.decode_with(bytes, || now)
    }

    /// The largest accepted record, in bytes.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Rejects a record of `total` bytes of which only `prefix` (more than the limit) was
    /// read: the checks of [`Decoder::decode`] that a prefix can decide, in their order.
    pub fn reject_partial(&self, prefix: &[u8], total: usize) -> Reject {
        match std::str::from_utf8(prefix) {
            // A character cut at the end of the prefix is not an error of the record.
            Err(e) if e.error_len().is_some() => Reject::new(
                Reason::InvalidUtf8,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            ),
            _ => Reject::new(
                Reason::TooLarge,
                format!(
                    "record is {total} bytes or more, limit is {}",
                    self.max_event_bytes
                ),
            ),
        }
    }

    fn decode_with(&self, bytes: &[u8], now: impl FnOnce() -> Micros) -> Result<Event, Reject> {
        let event = self.decode_valid(bytes)?;
        if let Some(max_future) = self.max_future {
            check_not_future(&event, now(), max_future)?;
        }
        Ok(event)
    }

    fn decode_valid(&self, bytes: &[u8]) -> Result<Event, Reject> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Reject::new(
                Reason::InvalidUtf8,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )
        })?;
        if bytes.len() > self.max_event_bytes {
            return Err(Reject::new(
                Reason::TooLarge,
                format!(
                    "record is {} bytes, limit is {}",
                    bytes.len(),
                    self.max_event_bytes
                ),
            ));
        }
        // serde would also read a top-level array positionally into the struct.
        if !text.trim_start().starts_with('{') {
            let what = if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
                "not a JSON object".to_owned()
            } else {
                "not valid JSON: expected `{`".to_owned()
            };
            return Err(Reject::new(Reason::InvalidJson, what));
        }
        let raw: Raw = serde_json::from_str(text).map_err(|e| {
            let what = if e.is_data() {
                // A top-level array, string, number… is valid JSON but not an object.
                "not a JSON object".to_owned()
            } else {
                format!("not valid JSON: {e}")
            };
            Reject::new(Reason::InvalidJson, truncate(what, 200))
        })?;
        validate(raw)
    }
}

/// The wall clock in microseconds since the Unix epoch.
pub fn wall_clock() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as Micros)
}

/// The last check of contract §4: an event time more than `max_future` ahead of the wall
/// clock would move the watermark past every real event.
fn check_not_future(event: &Event, now: Micros, max_future: Micros) -> Result<(), Reject> {
    let ahead = event.time.saturating_sub(now);
    if ahead <= max_future {
        return Ok(());
    }
    Err(Reject::new(
        Reason::FutureTime,
        format!(
            "`time` {} is {} ahead of the wall clock (limit {}, `input.max_future`)",
            super::time::format_rfc3339(event.time),
            super::time::format_approx(ahead),
            super::time::format_duration(max_future)
        ),
    ))
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

fn validate(raw: Raw<'_>) -> Result<Event, Reject> {
    for (field, value) in [
        ("id", &raw.id),
        ("type", &raw.kind_of_event),
        ("time", &raw.time),
    ] {
        if value.is_none() {
            return Err(missing(field));
        }
    }
    let event_type = match &raw.kind_of_event {
        Some(Loose::Str(s)) => EventType::parse(s).ok_or_else(|| {
            Reject::new(
                Reason::UnknownType,
                truncate(format!("unknown event type `{s}`"), 200),
            )
        })?,
        Some(other) => {
            return Err(Reject::new(
                Reason::UnknownType,
                format!("`type` must be a string, got {}", other.type_name()),
            ));
        }
        None => return Err(missing("type")),
    };
    check_required_present(&raw, event_type)?;

    let id = string(&raw.id, "id", MAX_ID)?.ok_or_else(|| missing("id"))?;
    let time = timestamp(&raw.time, "time")?.ok_or_else(|| missing("time"))?;
    let source = string(&raw.source, "source", MAX_NAME)?;
    let identity = if event_type.needs_identity() {
        Some(required(&raw.identity, "identity", MAX_NAME)?)
    } else {
        None
    };
    let body = body(&raw, event_type)?;
    Ok(Event {
        id,
        time,
        source,
        identity,
        body,
    })
}

/// Contract order: every required field's presence is checked before any field's validity.
fn check_required_present(raw: &Raw<'_>, event_type: EventType) -> Result<(), Reject> {
    use EventType as T;
    if event_type.needs_identity() && raw.identity.is_none() {
        return Err(missing("identity"));
    }
    let required: &[(&str, &Option<Loose>)] = match event_type {
        T::IdentityRegistered => &[("kind", &raw.kind)],
        T::OwnerAssigned => {
            if raw.business_owner.is_none() && raw.technical_custodian.is_none() {
                return Err(Reject::new(
                    Reason::MissingField,
                    "missing field `business_owner` or `technical_custodian` (at least one)",
                ));
            }
            &[]
        }
        T::Approved => &[("approver", &raw.approver), ("scopes", &raw.scopes)],
        T::Recertified => &[("reviewer", &raw.reviewer)],
        T::ScopeGranted | T::ScopeRevoked => &[("scope", &raw.scope)],
        T::VendorLinked | T::VendorOffboarded => &[("vendor", &raw.vendor)],
        T::Offboarded => &[],
        T::PrincipalDeparted => &[("principal", &raw.principal)],
        T::CredentialIssued => &[("credential", &raw.credential), ("kind", &raw.kind)],
        T::CredentialRotated | T::CredentialRevoked | T::CredentialUsed => {
            &[("credential", &raw.credential)]
        }
        T::ToolCalled => &[("tool", &raw.tool)],
        T::TaskCompleted => &[("task", &raw.task)],
    };
    match required.iter().find(|(_, v)| v.is_none()) {
        Some((field, _)) => Err(missing(field)),
        None => Ok(()),
    }
}

fn body(raw: &Raw<'_>, event_type: EventType) -> Result<Body, Reject> {
    use EventType as T;
    Ok(match event_type {
        T::IdentityRegistered => Body::Registered {
            kind: Some(closed(
                &raw.kind,
                "kind",
                IdentityKind::parse,
                IdentityKind::ALLOWED,
            )?),
            tier: optional_closed(&raw.tier, "tier", Tier::parse, Tier::ALLOWED)?
                .unwrap_or(Tier::ToolExecuting),
            name: string(&raw.name, "name", MAX_TEXT)?,
            workflow: string(&raw.workflow, "workflow", MAX_TEXT)?,
            vendors: list(&raw.vendors, "vendors")?.unwrap_or_default(),
        },
        T::OwnerAssigned => Body::OwnerAssigned {
            business_owner: string(&raw.business_owner, "business_owner", MAX_NAME)?,
            technical_custodian: string(&raw.technical_custodian, "technical_custodian", MAX_NAME)?,
        },
        T::Approved => Body::Approved {
            approver: required(&raw.approver, "approver", MAX_NAME)?,
            scopes: list(&raw.scopes, "scopes")?.unwrap_or_default(),
            tools: list(&raw.tools, "tools")?,
        },
        T::Recertified => Body::Recertified {
            reviewer: required(&raw.reviewer, "reviewer", MAX_NAME)?,
            scopes: list(&raw.scopes, "scopes")?,
        },
        T::ScopeGranted => Body::ScopeGranted {
            scope: required(&raw.scope, "scope", MAX_NAME)?,
        },
        T::ScopeRevoked => Body::ScopeRevoked {
            scope: required(&raw.scope, "scope", MAX_NAME)?,
        },
        T::VendorLinked => Body::VendorLinked {
            vendor: required(&raw.vendor, "vendor", MAX_NAME)?,
        },
        T::Offboarded => Body::Offboarded {
            reason: string(&raw.reason, "reason", MAX_TEXT)?,
        },
        T::PrincipalDeparted => Body::PrincipalDeparted {
            principal: required(&raw.principal, "principal", MAX_NAME)?,
        },
        T::VendorOffboarded => Body::VendorOffboarded {
            vendor: required(&raw.vendor, "vendor", MAX_NAME)?,
        },
        T::CredentialIssued => {
            let kind = closed(&raw.kind, "kind", issued_kind, ISSUED_KINDS)?;
            Body::CredentialIssued {
                credential: required(&raw.credential, "credential", MAX_NAME)?,
                kind,
                expires: timestamp(&raw.expires, "expires")?,
                scopes: list(&raw.scopes, "scopes")?.unwrap_or_default(),
                task: string(&raw.task, "task", MAX_NAME)?,
            }
        }
        T::CredentialRotated => Body::CredentialRotated {
            credential: required(&raw.credential, "credential", MAX_NAME)?,
            new_credential: string(&raw.new_credential, "new_credential", MAX_NAME)?,
            expires: timestamp(&raw.expires, "expires")?,
        },
        T::CredentialRevoked => Body::CredentialRevoked {
            credential: required(&raw.credential, "credential", MAX_NAME)?,
        },
        T::CredentialUsed => Body::CredentialUsed(Use {
            credential: required(&raw.credential, "credential", MAX_NAME)?,
            workload: string(&raw.workload, "workload", MAX_NAME)?,
            environment: string(&raw.environment, "environment", MAX_NAME)?,
            source_ip: string(&raw.source_ip, "source_ip", MAX_NAME)?,
        }),
        T::ToolCalled => Body::ToolCalled(ToolCall {
            tool: required(&raw.tool, "tool", MAX_NAME)?,
            credential: string(&raw.credential, "credential", MAX_NAME)?,
            scopes: list(&raw.scopes, "scopes")?.unwrap_or_default(),
            sensitivity: optional_closed(
                &raw.sensitivity,
                "sensitivity",
                Sensitivity::parse,
                Sensitivity::ALLOWED,
            )?
            .unwrap_or(Sensitivity::Internal),
            environment: string(&raw.environment, "environment", MAX_NAME)?,
            workload: string(&raw.workload, "workload", MAX_NAME)?,
            approval: string(&raw.approval, "approval", MAX_NAME)?,
            task: string(&raw.task, "task", MAX_NAME)?,
            session: string(&raw.session, "session", MAX_NAME)?,
            vendor: string(&raw.vendor, "vendor", MAX_NAME)?,
            outcome: optional_closed(&raw.outcome, "outcome", Outcome::parse, Outcome::ALLOWED)?,
        }),
        T::TaskCompleted => Body::TaskCompleted {
            task: required(&raw.task, "task", MAX_NAME)?,
        },
    })
}

/// Kinds a `credential.issued` may name (`unknown` is internal only).
const ISSUED_KINDS: &[&str] = &[
    "api_key",
    "client_secret",
    "password",
    "ssh_key",
    "certificate",
    "oauth_token",
    "jit_token",
    "workload_svid",
];

fn issued_kind(s: &str) -> Option<CredentialKind> {
    CredentialKind::parse(s).filter(|k| *k != CredentialKind::Unknown)
}

fn missing(field: &str) -> Reject {
    Reject::new(Reason::MissingField, format!("missing field `{field}`"))
}

fn invalid(field: &str, what: impl std::fmt::Display) -> Reject {
    Reject::new(Reason::InvalidField, format!("field `{field}` {what}"))
}

fn char_len_ok(s: &str, min: usize, max: usize) -> bool {
    // Byte length bounds char count from above, so most strings skip the count.
    s.len() >= min && (s.len() <= max || s.chars().count() <= max)
}

fn string(value: &Option<Loose<'_>>, field: &str, max: usize) -> Result<Option<String>, Reject> {
    match value {
        None => Ok(None),
        Some(Loose::Str(s)) if char_len_ok(s, 1, max) => Ok(Some(s.as_ref().to_owned())),
        Some(Loose::Str(_)) => Err(invalid(field, format!("must be 1..{max} characters"))),
        Some(other) => Err(invalid(
            field,
            format!("must be a string, got {}", other.type_name()),
        )),
    }
}

fn required(value: &Option<Loose<'_>>, field: &str, max: usize) -> Result<String, Reject> {
    string(value, field, max)?.ok_or_else(|| missing(field))
}

fn list(value: &Option<Loose<'_>>, field: &str) -> Result<Option<Vec<String>>, Reject> {
    match value {
        None => Ok(None),
        Some(Loose::StrList(items)) => {
            if items.len() > MAX_ITEMS {
                return Err(invalid(field, format!("has more than {MAX_ITEMS} items")));
            }
            if !items.iter().all(|s| char_len_ok(s, 1, MAX_NAME)) {
                return Err(invalid(
                    field,
                    format!("items must be 1..{MAX_NAME} characters"),
                ));
            }
            Ok(Some(items.iter().map(|s| s.as_ref().to_owned()).collect()))
        }
        Some(other) => Err(invalid(
            field,
            format!("must be an array of strings, got {}", other.type_name()),
        )),
    }
}

fn timestamp(value: &Option<Loose<'_>>, field: &str) -> Result<Option<Micros>, Reject> {
    match value {
        None => Ok(None),
        Some(Loose::Str(s)) => parse_rfc3339(s)
            .map(Some)
            .ok_or_else(|| invalid(field, "must be an RFC 3339 timestamp")),
        Some(other) => Err(invalid(
            field,
            format!(
                "must be an RFC 3339 timestamp string, got {}",
                other.type_name()
            ),
        )),
    }
}

fn closed<T>(
    value: &Option<Loose<'_>>,
    field: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &[&str],
) -> Result<T, Reject> {
    optional_closed(value, field, parse, allowed)?.ok_or_else(|| missing(field))
}

fn optional_closed<T>(
    value: &Option<Loose<'_>>,
    field: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &[&str],
) -> Result<Option<T>, Reject> {
    match value {
        None => Ok(None),
        Some(Loose::Str(s)) => parse(s)
            .map(Some)
            .ok_or_else(|| invalid(field, format!("must be one of {}", allowed.join(", ")))),
        Some(other) => Err(invalid(
            field,
            format!("must be a string, got {}", other.type_name()),
        )),
    }
}

#[cfg(test)]
mod tests;
