//! Microsoft Entra ID audit logs (`entra-audit`): Graph `directoryAudits` objects or Log
//! Analytics `AuditLogs` rows (whose nested fields are JSON text).
//!
//! Identities are `entra:<tenant>:app:<application object id>` and
//! `entra:<tenant>:sp:<service principal object id>`; credentials are the key ids of
//! `KeyDescription` (secret text is never in the log). Mapped: credentials added or
//! removed on an application or service principal, delegated permission grants added or
//! removed (the scopes new minus old, `graph:<scope>` for Microsoft Graph), and deleted
//! applications and service principals.

use serde_json::Value;

use super::{Context, MapResult, Mapped, Out, Skip, SkipReason, time};
use crate::event::EventType;

/// Microsoft Graph's application id.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// A field under either of its spellings (Graph camelCase, Log Analytics PascalCase),
/// with JSON text parsed.
fn field(record: &Value, names: &[&str]) -> Option<Value> {
    let v = names.iter().find_map(|n| record.get(*n))?;
    match v {
        Value::String(s) if s.trim_start().starts_with(['[', '{']) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

fn text<'a>(v: &'a Value, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| v.get(*n))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A modified property's old and new values, unquoted when they are JSON strings.
fn property(target: &Value, name: &str) -> (Option<String>, Option<String>) {
    let props = field(target, &["modifiedProperties", "ModifiedProperties"]);
    let Some(prop) = props.as_ref().and_then(Value::as_array).and_then(|ps| {
        ps.iter()
            .find(|p| text(p, &["displayName", "DisplayName"]) == Some(name))
    }) else {
        return (None, None);
    };
    let value = |key: &str| {
        let raw = text(prop, &[key])?;
        Some(match serde_json::from_str::<Value>(raw) {
            Ok(Value::String(s)) => s,
            _ => raw.to_owned(),
        })
    };
    (value("oldValue"), value("newValue"))
}

/// `[KeyIdentifier=…,KeyType=Password,…]` entries of a `KeyDescription` value.
fn keys(value: Option<&str>) -> Vec<(String, &'static str)> {
    let Some(value) = value else {
        return Vec::new();
    };
    let entries: Vec<String> = serde_json::from_str(value).unwrap_or_default();
    entries
        .iter()
        .filter_map(|e| {
            let inner = e.trim().trim_start_matches('[').trim_end_matches(']');
            let mut id = None;
            let mut kind = "client_secret";
            for part in inner.split(',') {
                match part.split_once('=') {
                    Some(("KeyIdentifier", v)) => id = Some(v.trim().to_owned()),
                    Some(("KeyType", v)) if v.contains("X509") || v.contains("Asymmetric") => {
                        kind = "certificate";
                    }
                    _ => {}
                }
            }
            Some((id?, kind))
        })
        .collect()
}

/// Maps one audit record.
pub fn map(record: &Value, _ctx: &Context<'_>) -> MapResult {
    let Some(record_id) = text(record, &["id", "Id"]) else {
        return Err(Skip::new(SkipReason::ParseError, "no id"));
    };
    let activity = text(
        record,
        &[
            "activityDisplayName",
            "ActivityDisplayName",
            "OperationName",
        ],
    )
    .unwrap_or("");
    let time = record
        .get("activityDateTime")
        .or_else(|| record.get("ActivityDateTime"))
        .or_else(|| record.get("TimeGenerated"))
        .and_then(time::parse)
        .ok_or_else(|| Skip::new(SkipReason::MissingTime, "no activityDateTime"))?;
    let result = text(record, &["result", "Result"]).unwrap_or("success");
    if !result.eq_ignore_ascii_case("success") {
        return Err(Skip::new(SkipReason::FailedRequest, activity));
    }
    let tenant = text(record, &["tenantId", "TenantId", "AADTenantId"]).unwrap_or("default");
    let targets = field(record, &["targetResources", "TargetResources"]).unwrap_or(Value::Null);
    let targets = targets.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let key_of = |target: &Value| -> Option<String> {
        let id = text(target, &["id", "Id"])?;
        let kind = match text(target, &["type", "Type"])? {
            "Application" => "app",
            "ServicePrincipal" => "sp",
            _ => return None,
        };
        Some(format!("entra:{tenant}:{kind}:{id}"))
    };
    let mut events = Vec::new();
    let lower = activity.to_ascii_lowercase();
    if lower.contains("certificates and secrets") || lower.contains("service principal credentials")
    {
        for target in targets {
            let Some(identity) = key_of(target) else {
                continue;
            };
            let (old, new) = property(target, "KeyDescription");
            let (old, new) = (keys(old.as_deref()), keys(new.as_deref()));
            for (id, kind) in &new {
                if !old.iter().any(|(o, _)| o == id) {
                    events.push(
                        Out::new(EventType::CredentialIssued, time, &identity)
                            .with("credential", id)
                            .with("kind", *kind),
                    );
                }
            }
            for (id, _) in &old {
                if !new.iter().any(|(n, _)| n == id) {
                    events.push(
                        Out::new(EventType::CredentialRevoked, time, &identity)
                            .with("credential", id),
                    );
                }
            }
        }
    } else if lower.contains("delegated permission grant") {
        // The first target is the resource (e.g. Microsoft Graph); the client is named by
        // `ServicePrincipal.ObjectID`, or is the second target.
        let resource = targets.first();
        let (_, client) =
            resource.map_or((None, None), |r| property(r, "ServicePrincipal.ObjectID"));
        let client = client.or_else(|| {
            targets
                .get(1)
                .and_then(|t| text(t, &["id", "Id"]))
                .map(str::to_owned)
        });
        let Some(client) = client else {
            return Err(Skip::new(SkipReason::ParseError, "grant names no client"));
        };
        let identity = format!("entra:{tenant}:sp:{client}");
        let (old, new) = resource.map_or((None, None), |r| {
            property(r, "DelegatedPermissionGrant.Scope")
        });
        let names = property(
            resource.unwrap_or(&Value::Null),
            "TargetId.ServicePrincipalNames",
        )
        .1;
        let prefix = if names.is_some_and(|n| n.contains(GRAPH_APP_ID)) {
            "graph".to_owned()
        } else {
            resource
                .and_then(|r| text(r, &["id", "Id"]))
                .unwrap_or("resource")
                .to_owned()
        };
        let split = |s: Option<String>| -> Vec<String> {
            s.unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        let (old, new) = (split(old), split(new));
        let (granted, revoked) = if lower.starts_with("remove") {
            (Vec::new(), old.clone())
        } else {
            (
                new.iter().filter(|s| !old.contains(s)).cloned().collect(),
                old.iter()
                    .filter(|s| !new.contains(s))
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        };
        for scope in granted {
            events.push(
                Out::new(EventType::ScopeGranted, time, &identity)
                    .with("scope", format!("{prefix}:{scope}")),
            );
        }
        for scope in revoked {
            events.push(
                Out::new(EventType::ScopeRevoked, time, &identity)
                    .with("scope", format!("{prefix}:{scope}")),
            );
        }
    } else if lower.starts_with("delete application")
        || lower.starts_with("remove service principal")
    {
        for target in targets {
            if let Some(identity) = key_of(target) {
                events.push(
                    Out::new(EventType::Offboarded, time, identity)
                        .with("reason", activity.to_owned()),
                );
            }
        }
    } else {
        return Err(Skip::new(SkipReason::UnmappedAction, activity));
    }
    if events.is_empty() {
        return Err(Skip::new(SkipReason::UnmappedAction, activity));
    }
    Ok(Mapped {
        record_id: record_id.to_owned(),
        events,
    })
}
