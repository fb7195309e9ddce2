//! HashiCorp Vault audit device (`vault-audit`, the file or socket device's JSON): token
//! issue on login and `auth/token/create`, renewals, revocations, dynamic secret leases,
//! AppRole secret ids, and every other authenticated request as a tool call.
//!
//! Only `response` entries count (they embed their request; `request` entries repeat it).
//! Identities are `vault:<cluster>:entity:<entity_id>` (else `…:token:<display_name>`);
//! credentials are token accessors, lease ids and secret-id accessors, which the audit
//! device writes as HMACs unless configured otherwise — stable within one device. The
//! client token is never read.

use serde_json::Value;

use super::{Context, MapResult, Mapped, Out, Skip, SkipReason, time};
use crate::event::{EventType, Micros};

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn seconds(v: Option<&Value>) -> Option<Micros> {
    let secs = match v? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    (secs > 0).then(|| secs.min(1 << 32) * 1_000_000)
}

fn identity_of(auth: &Value, ctx: &Context<'_>) -> Option<String> {
    let cluster = &ctx.config.cluster;
    if let Some(entity) = s(auth, &["entity_id"]) {
        return Some(format!("vault:{cluster}:entity:{entity}"));
    }
    s(auth, &["display_name"]).map(|d| format!("vault:{cluster}:token:{d}"))
}

/// Maps one audit entry.
pub fn map(entry: &Value, ctx: &Context<'_>) -> MapResult {
    match s(entry, &["type"]) {
        Some("response") => {}
        Some("request") => return Err(Skip::new(SkipReason::DuplicateStage, "request")),
        _ => return Err(Skip::new(SkipReason::ParseError, "not a Vault audit entry")),
    }
    let request = entry.get("request").unwrap_or(&Value::Null);
    let Some(record_id) = s(request, &["id"]) else {
        return Err(Skip::new(SkipReason::ParseError, "no request.id"));
    };
    let time = entry
        .get("time")
        .and_then(time::parse)
        .ok_or_else(|| Skip::new(SkipReason::MissingTime, "no time"))?;
    let path = s(request, &["path"]).unwrap_or("");
    let operation = s(request, &["operation"]).unwrap_or("");
    let error = s(entry, &["error"]);
    let auth = entry.get("auth").unwrap_or(&Value::Null);
    let caller = identity_of(auth, ctx);
    let segments: Vec<&str> = path.split('/').collect();
    let mut events = Vec::new();
    let is_lifecycle = path.starts_with("auth/token/")
        || (segments.first() == Some(&"auth") && segments.get(2) == Some(&"login"))
        || segments.get(1) == Some(&"creds")
        || path.starts_with("sys/leases/revoke")
        || (path.starts_with("auth/approle/role/") && path.contains("/secret-id"));
    if is_lifecycle {
        if error.is_some() {
            return Err(Skip::new(SkipReason::FailedRequest, path));
        }
        lifecycle(
            entry,
            ctx,
            time,
            path,
            &segments,
            caller.as_deref(),
            &mut events,
        )?;
    } else {
        let Some(identity) = caller else {
            return Err(Skip::new(SkipReason::NotNhi, "unauthenticated request"));
        };
        let mount =
            s(request, &["mount_point"]).unwrap_or_else(|| segments.first().copied().unwrap_or(""));
        let tool = format!("vault:{operation}:{mount}");
        let scopes: Vec<String> = auth
            .get("policy_results")
            .and_then(|p| p.get("granting_policies"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| s(p, &["name"]).map(str::to_owned))
            .collect();
        let workload = ["role_name", "service_account_name", "role"]
            .iter()
            .find_map(|k| s(auth, &["metadata", k]));
        let outcome = match error {
            None => "success",
            Some(e) if e.contains("permission denied") => "denied",
            Some(_) => "error",
        };
        events.push(
            Out::new(EventType::ToolCalled, time, identity)
                .with("tool", &tool)
                .with_opt("credential", s(auth, &["accessor"]))
                .with_list("scopes", scopes)
                .with_opt("sensitivity", ctx.config.sensitivity(&tool, None))
                .with_opt("workload", workload)
                .with("outcome", outcome),
        );
    }
    if events.is_empty() {
        return Err(Skip::new(SkipReason::UnmappedAction, path));
    }
    Ok(Mapped {
        record_id: record_id.to_owned(),
        events,
    })
}

/// Token, lease and secret-id lifecycle.
fn lifecycle(
    entry: &Value,
    ctx: &Context<'_>,
    time: Micros,
    path: &str,
    segments: &[&str],
    caller: Option<&str>,
    events: &mut Vec<Out>,
) -> Result<(), Skip> {
    let request = entry.get("request").unwrap_or(&Value::Null);
    let response = entry.get("response").unwrap_or(&Value::Null);
    let auth = entry.get("auth").unwrap_or(&Value::Null);
    let new_auth = response.get("auth").filter(|a| a.is_object());
    let cluster = &ctx.config.cluster;
    let login = segments.first() == Some(&"auth") && segments.get(2) == Some(&"login");
    let create = path == "auth/token/create"
        || path == "auth/token/create-orphan"
        || path.starts_with("auth/token/create/");
    if login || create {
        let Some(issued) = new_auth else {
            return Err(Skip::new(
                SkipReason::UnmappedAction,
                "no token in the response",
            ));
        };
        let identity = identity_of(issued, ctx)
            .ok_or_else(|| Skip::new(SkipReason::UnlinkableCredential, "token names no entity"))?;
        let accessor = s(issued, &["accessor"])
            .ok_or_else(|| Skip::new(SkipReason::UnlinkableCredential, "token has no accessor"))?;
        let mount = if login {
            segments.get(1).copied()
        } else {
            Some("token")
        };
        let kind = if mount.is_some_and(|m| ctx.config.jit_auth_mounts.iter().any(|j| j == m)) {
            "jit_token"
        } else {
            "oauth_token"
        };
        let policies: Vec<String> = issued
            .get("token_policies")
            .or_else(|| issued.get("policies"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
        let ttl = seconds(
            issued
                .get("token_ttl")
                .or_else(|| issued.get("lease_duration")),
        );
        events.push(
            Out::new(EventType::CredentialIssued, time, &identity)
                .with("credential", accessor)
                .with("kind", kind)
                .with_time("expires", ttl.map(|t| time + t))
                .with_list("scopes", policies.iter().cloned()),
        );
        for policy in policies.iter().filter(|p| *p != "default") {
            events.push(
                Out::new(EventType::ScopeGranted, time, &identity)
                    .with("scope", format!("vault:policy:{policy}"))
                    .with_id(format!("grant:{identity}:{policy}")),
            );
        }
        return Ok(());
    }
    match path {
        "auth/token/renew-self" | "auth/token/renew" | "auth/token/renew-accessor" => {
            let renewed = new_auth.unwrap_or(&Value::Null);
            let accessor = s(renewed, &["accessor"])
                .or_else(|| {
                    (path == "auth/token/renew-self")
                        .then(|| s(auth, &["accessor"]))
                        .flatten()
                })
                .or_else(|| s(request, &["data", "accessor"]))
                .ok_or_else(|| Skip::new(SkipReason::UnlinkableCredential, path))?;
            let identity = identity_of(renewed, ctx)
                .or_else(|| caller.map(str::to_owned))
                .ok_or_else(|| Skip::new(SkipReason::UnlinkableCredential, path))?;
            let ttl = seconds(
                renewed
                    .get("token_ttl")
                    .or_else(|| renewed.get("lease_duration")),
            );
            events.push(
                Out::new(EventType::CredentialRotated, time, identity)
                    .with("credential", accessor)
                    .with_time("expires", ttl.map(|t| time + t)),
            );
        }
        "auth/token/revoke-self" | "auth/token/revoke-accessor" | "auth/token/revoke-orphan" => {
            let accessor = if path == "auth/token/revoke-self" {
                s(auth, &["accessor"])
            } else {
                s(request, &["data", "accessor"])
            };
            let (Some(accessor), Some(identity)) = (accessor, caller) else {
                return Err(Skip::new(SkipReason::UnlinkableCredential, path));
            };
            events.push(
                Out::new(EventType::CredentialRevoked, time, identity).with("credential", accessor),
            );
        }
        "auth/token/revoke" => {
            return Err(Skip::new(
                SkipReason::UnlinkableCredential,
                "revoked by token, not accessor",
            ));
        }
        _ if segments.get(1) == Some(&"creds") => {
            let Some(identity) = caller else {
                return Err(Skip::new(SkipReason::UnlinkableCredential, path));
            };
            let Some(lease) = s(response, &["secret", "lease_id"]) else {
                return Err(Skip::new(SkipReason::UnlinkableCredential, "no lease id"));
            };
            let kind = match segments.first().copied().unwrap_or("") {
                m if m.contains("database") => "password",
                m if m.contains("aws") || m.contains("gcp") || m.contains("azure") => "api_key",
                _ => "api_key",
            };
            events.push(
                Out::new(EventType::CredentialIssued, time, identity)
                    .with("credential", lease)
                    .with("kind", kind)
                    .with_time("expires", Some(time + ctx.config.lease_ttl(path))),
            );
        }
        _ if path.starts_with("sys/leases/revoke-prefix")
            || path.starts_with("sys/leases/revoke-force") =>
        {
            return Err(Skip::new(SkipReason::NeedsState, "revoked by prefix"));
        }
        _ if path.starts_with("sys/leases/revoke") => {
            let lease = path
                .strip_prefix("sys/leases/revoke/")
                .filter(|l| !l.is_empty())
                .or_else(|| s(request, &["data", "lease_id"]));
            let (Some(lease), Some(identity)) = (lease, caller) else {
                return Err(Skip::new(SkipReason::UnlinkableCredential, path));
            };
            events.push(
                Out::new(EventType::CredentialRevoked, time, identity).with("credential", lease),
            );
        }
        _ if path.starts_with("auth/approle/role/") => {
            let role = segments.get(3).copied().unwrap_or("");
            let identity = format!("vault:{cluster}:approle:{role}");
            if path.ends_with("/secret-id-accessor/destroy") {
                let accessor = s(request, &["data", "secret_id_accessor"])
                    .ok_or_else(|| Skip::new(SkipReason::UnlinkableCredential, path))?;
                events.push(
                    Out::new(EventType::CredentialRevoked, time, identity)
                        .with("credential", accessor),
                );
            } else if path.ends_with("/secret-id") || path.ends_with("/custom-secret-id") {
                let accessor = s(response, &["data", "secret_id_accessor"])
                    .ok_or_else(|| Skip::new(SkipReason::UnlinkableCredential, path))?;
                let ttl = seconds(response.get("data").and_then(|d| d.get("secret_id_ttl")));
                events.push(
                    Out::new(EventType::CredentialIssued, time, identity)
                        .with("credential", accessor)
                        .with("kind", "client_secret")
                        .with_time("expires", ttl.map(|t| time + t)),
                );
            }
        }
        _ => {}
    }
    Ok(())
}
