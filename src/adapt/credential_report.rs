//! The IAM credential report (`aws-credential-report`, CSV from
//! `aws iam get-credential-report`): what the logs cannot show — when keys, passwords and
//! signing certificates were created or last rotated, and when last used, even long
//! before the capture. So NHI-ROT-001 and NHI-STALE-001 can judge keys created before it.
//!
//! The report names a user's keys by slot, not by key id, so its credentials are
//! `access-key-<n>:<user arn>` and `signing-cert-<n>:<user arn>`; the console password
//! is `login-profile:<user arn>`, the same credential CloudTrail's login-profile events
//! and console sign-ins name. Inactive keys are left out (the report does not say when
//! they were deactivated). The root account is not an NHI.

use serde_json::{Map, Value};

use super::framing::Framed;
use super::{Context, MapResult, Mapped, Out, Skip, SkipReason, time};
use crate::event::EventType;
use crate::event::time::format_rfc3339;

/// The report's rows as objects keyed by column name.
pub fn records(bytes: &[u8]) -> Vec<Framed> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return vec![Err(format!("CSV header: {e}"))],
    };
    reader
        .records()
        .map(|row| {
            let row = row.map_err(|e| format!("CSV row: {e}"))?;
            let map: Map<String, Value> = headers
                .iter()
                .zip(row.iter())
                .map(|(h, v)| (h.to_owned(), Value::String(v.to_owned())))
                .collect();
            Ok(Value::Object(map))
        })
        .collect()
}

fn cell<'a>(row: &'a Value, key: &str) -> Option<&'a str> {
    row.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A time cell; `N/A`, `no_information`, `not_supported` are none.
fn when(row: &Value, key: &str) -> Option<i64> {
    cell(row, key).and_then(time::parse_str)
}

fn yes(row: &Value, key: &str) -> bool {
    cell(row, key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Maps one report row.
pub fn map(row: &Value, ctx: &Context<'_>) -> MapResult {
    let user = cell(row, "user").ok_or_else(|| Skip::new(SkipReason::ParseError, "no `user`"))?;
    if user == "<root_account>" {
        return Err(Skip::new(SkipReason::NotNhi, "root account"));
    }
    let arn = cell(row, "arn").ok_or_else(|| Skip::new(SkipReason::ParseError, "no `arn`"))?;
    let account = arn.split(':').nth(4).unwrap_or("");
    if account.is_empty() {
        return Err(Skip::new(SkipReason::ParseError, "`arn` is not an IAM ARN"));
    }
    let identity = format!("arn:aws:iam::{account}:user/{user}");
    if ctx.config.is_human(&identity) {
        return Err(Skip::new(SkipReason::NotNhi, "human by config"));
    }
    let created = when(row, "user_creation_time")
        .ok_or_else(|| Skip::new(SkipReason::MissingTime, "no `user_creation_time`"))?;
    let mut events = vec![
        Out::new(EventType::IdentityRegistered, created, &identity)
            .with("kind", "service_account")
            .with("name", user)
            .with_id(format!("{identity}:registered@{}", format_rfc3339(created))),
    ];
    let mut credential = |id: String, kind: &str, issued: Option<i64>, used: Option<i64>| {
        let Some(issued) = issued else { return };
        events.push(
            Out::new(EventType::CredentialIssued, issued, &identity)
                .with("credential", &id)
                .with("kind", kind)
                .with_id(format!("{id}:issued@{}", format_rfc3339(issued))),
        );
        if let Some(used) = used.filter(|u| *u >= issued) {
            events.push(
                Out::new(EventType::CredentialUsed, used, &identity)
                    .with("credential", &id)
                    .with_id(format!("{id}:used@{}", format_rfc3339(used))),
            );
        }
    };
    if yes(row, "password_enabled") {
        credential(
            format!("login-profile:{identity}"),
            "password",
            when(row, "password_last_changed").or(Some(created)),
            when(row, "password_last_used"),
        );
    }
    for n in 1..=2 {
        if yes(row, &format!("access_key_{n}_active")) {
            credential(
                format!("access-key-{n}:{identity}"),
                "api_key",
                when(row, &format!("access_key_{n}_last_rotated")),
                when(row, &format!("access_key_{n}_last_used_date")),
            );
        }
        if yes(row, &format!("cert_{n}_active")) {
            credential(
                format!("signing-cert-{n}:{identity}"),
                "certificate",
                when(row, &format!("cert_{n}_last_rotated")),
                None,
            );
        }
    }
    Ok(Mapped {
        record_id: identity.clone(),
        events,
    })
}
