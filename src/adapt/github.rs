//! GitHub organisation audit log (`github-audit`, the REST/streaming JSON): GitHub App
//! installations and their repositories, OAuth apps and their client secrets,
//! fine-grained personal access tokens, deploy keys, departing members, and API and git
//! requests made with a token.
//!
//! Identities are `github:<org>:app:<slug>`, `github:<org>:oauth_app:<id>`,
//! `github:<org>:pat:<token_id>` and `github:<org>:deploy_keys:<repo>`. The log carries
//! no secret values; its `hashed_token` is a digest, used as a credential id. Records
//! without a `_document_id` are named by a digest of their content.

use serde_json::Value;

use super::{Context, MapResult, Mapped, Out, Skip, SkipReason, time};
use crate::event::EventType;

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Repository names of an event: `repositories` / `repositories_added` / `_removed`
/// lists, or `repo`.
fn repositories(event: &Value, keys: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = keys
        .iter()
        .filter_map(|k| event.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    if out.is_empty()
        && let Some(repo) = s(event, "repo")
    {
        out.push(repo.to_owned());
    }
    out
}

/// Fine-grained permissions (`{"contents": "read"}`) as scopes `contents:read`.
fn permissions(event: &Value) -> Vec<String> {
    match event.get("permissions").or_else(|| event.get("permission")) {
        Some(Value::Object(map)) => map
            .iter()
            .filter(|(k, _)| !super::is_secret_name(k))
            .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}:{v}")))
            .collect(),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// Maps one audit event.
pub fn map(event: &Value, _ctx: &Context<'_>) -> MapResult {
    // Exports without `_document_id` get a digest of the record: still deterministic, so
    // a re-read deduplicates.
    let record_id = text(event, "_document_id")
        .or_else(|| text(event, "document_id"))
        .unwrap_or_else(|| {
            format!(
                "h{:016x}",
                xxhash_rust::xxh3::xxh3_64(event.to_string().as_bytes())
            )
        });
    let Some(action) = s(event, "action") else {
        return Err(Skip::new(SkipReason::ParseError, "no action"));
    };
    let time = ["@timestamp", "created_at", "at_sign_timestamp", "timestamp"]
        .iter()
        .find_map(|k| event.get(*k).and_then(time::parse))
        .ok_or_else(|| Skip::new(SkipReason::MissingTime, "no @timestamp"))?;
    let org = s(event, "org").unwrap_or("default");
    let app = || {
        s(event, "integration")
            .or_else(|| s(event, "name"))
            .map(|slug| format!("github:{org}:app:{slug}"))
    };
    let oauth_app = || {
        text(event, "oauth_application_id")
            .or_else(|| text(event, "oauth_application_name"))
            .or_else(|| text(event, "name"))
            .map(|id| format!("github:{org}:oauth_app:{id}"))
    };
    let mut events = Vec::new();
    match action {
        "integration_installation.create" => {
            let identity = app().ok_or_else(|| Skip::new(SkipReason::ParseError, "no app"))?;
            let name = s(event, "name")
                .or_else(|| s(event, "integration"))
                .unwrap_or("");
            events.push(
                Out::new(EventType::IdentityRegistered, time, &identity)
                    .with("kind", "api_client")
                    .with("name", name),
            );
            events.push(
                Out::new(EventType::VendorLinked, time, &identity)
                    .with("vendor", format!("github-app:{name}")),
            );
            for repo in repositories(event, &["repositories", "repositories_added"]) {
                events.push(
                    Out::new(EventType::ScopeGranted, time, &identity)
                        .with("scope", format!("repo:{repo}")),
                );
            }
        }
        "integration_installation.destroy" => {
            let identity = app().ok_or_else(|| Skip::new(SkipReason::ParseError, "no app"))?;
            events.push(Out::new(EventType::Offboarded, time, identity).with("reason", action));
        }
        "integration_installation.repositories_added"
        | "integration_installation.repositories_removed" => {
            let identity = app().ok_or_else(|| Skip::new(SkipReason::ParseError, "no app"))?;
            let (ty, keys): (_, &[&str]) = if action.ends_with("added") {
                (
                    EventType::ScopeGranted,
                    &["repositories_added", "repositories"],
                )
            } else {
                (
                    EventType::ScopeRevoked,
                    &["repositories_removed", "repositories"],
                )
            };
            for repo in repositories(event, keys) {
                events.push(Out::new(ty, time, &identity).with("scope", format!("repo:{repo}")));
            }
        }
        "oauth_application.create" | "oauth_application.destroy" => {
            let identity =
                oauth_app().ok_or_else(|| Skip::new(SkipReason::ParseError, "no app"))?;
            events.push(if action.ends_with("create") {
                Out::new(EventType::IdentityRegistered, time, identity).with("kind", "api_client")
            } else {
                Out::new(EventType::Offboarded, time, identity).with("reason", action)
            });
        }
        "oauth_application.generate_client_secret"
        | "oauth_application.reset_secret"
        | "oauth_application.remove_client_secret" => {
            let identity =
                oauth_app().ok_or_else(|| Skip::new(SkipReason::ParseError, "no app"))?;
            let credential = format!("{identity}:secret");
            events.push(match action {
                "oauth_application.generate_client_secret" => {
                    Out::new(EventType::CredentialIssued, time, identity)
                        .with("credential", credential)
                        .with("kind", "client_secret")
                }
                "oauth_application.reset_secret" => {
                    Out::new(EventType::CredentialRotated, time, identity)
                        .with("credential", credential)
                }
                _ => Out::new(EventType::CredentialRevoked, time, identity)
                    .with("credential", credential),
            });
        }
        "personal_access_token.access_granted" | "personal_access_token.access_revoked" => {
            let token = text(event, "token_id")
                .or_else(|| text(event, "personal_access_token_id"))
                .ok_or_else(|| Skip::new(SkipReason::UnlinkableCredential, "no token_id"))?;
            let identity = format!("github:{org}:pat:{token}");
            let credential = format!("github-pat:{token}");
            if action.ends_with("granted") {
                let expires = event.get("token_expiration").and_then(time::parse);
                events.push(
                    Out::new(EventType::CredentialIssued, time, &identity)
                        .with("credential", &credential)
                        .with("kind", "api_key")
                        .with_list("scopes", permissions(event))
                        .with_time("expires", expires),
                );
                if let Some(owner) = s(event, "user").or_else(|| s(event, "actor")) {
                    events.push(
                        Out::new(EventType::OwnerAssigned, time, &identity)
                            .with("technical_custodian", owner),
                    );
                }
            } else {
                events.push(
                    Out::new(EventType::CredentialRevoked, time, identity)
                        .with("credential", credential),
                );
            }
        }
        "public_key.create" | "public_key.delete" => {
            let Some(repo) = s(event, "repo") else {
                return Err(Skip::new(SkipReason::NotNhi, "a user's own SSH key"));
            };
            let key = text(event, "fingerprint")
                .or_else(|| text(event, "public_key_id"))
                .or_else(|| text(event, "title"))
                .ok_or_else(|| {
                    Skip::new(SkipReason::UnlinkableCredential, "deploy key has no id")
                })?;
            let identity = format!("github:{org}:deploy_keys:{repo}");
            let credential = format!("github-deploy-key:{repo}:{key}");
            events.push(if action.ends_with("create") {
                Out::new(EventType::CredentialIssued, time, identity)
                    .with("credential", credential)
                    .with("kind", "ssh_key")
            } else {
                Out::new(EventType::CredentialRevoked, time, identity)
                    .with("credential", credential)
            });
        }
        "org.remove_member" => {
            let user =
                s(event, "user").ok_or_else(|| Skip::new(SkipReason::ParseError, "no user"))?;
            events.push(Out::global(EventType::PrincipalDeparted, time).with("principal", user));
        }
        _ if action == "api.request" || action.starts_with("git.") => {
            let workload = s(event, "user_agent");
            if let Some(token) = text(event, "token_id").filter(|_| {
                s(event, "programmatic_access_type").is_none_or(|t| t.contains("Fine-grained"))
            }) {
                events.push(
                    Out::new(
                        EventType::CredentialUsed,
                        time,
                        format!("github:{org}:pat:{token}"),
                    )
                    .with("credential", format!("github-pat:{token}"))
                    .with_opt("workload", workload),
                );
            } else if let (Some(bot), Some(hashed)) = (
                s(event, "actor").and_then(|a| a.strip_suffix("[bot]")),
                s(event, "hashed_token"),
            ) {
                events.push(
                    Out::new(
                        EventType::CredentialUsed,
                        time,
                        format!("github:{org}:app:{bot}"),
                    )
                    .with("credential", format!("github-token:{hashed}"))
                    .with_opt("workload", workload),
                );
            } else {
                return Err(Skip::new(SkipReason::UnlinkableCredential, action));
            }
        }
        _ => return Err(Skip::new(SkipReason::UnmappedAction, action)),
    }
    if events.is_empty() {
        return Err(Skip::new(SkipReason::UnmappedAction, action));
    }
    Ok(Mapped { record_id, events })
}
