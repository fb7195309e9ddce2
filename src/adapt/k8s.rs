//! Kubernetes audit events (`k8s-audit`, `audit.k8s.io/v1` `Event`): service-account
//! lifecycle, TokenRequests, legacy token Secrets and RBAC bindings to service accounts,
//! and every request a service account makes.
//!
//! Identities are `k8s:<cluster>:system:serviceaccount:<namespace>:<name>` (cluster from
//! `adapt.cluster`). Only the `ResponseComplete` stage counts (the others repeat it).
//! Token values (`responseObject.status.token`, a Secret's `data`) are never read.

use serde_json::Value;

use super::{Context, MapResult, Mapped, Out, Skip, SkipReason, time};
use crate::event::EventType;

const SA_PREFIX: &str = "system:serviceaccount:";

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn sa_key(ctx: &Context<'_>, namespace: &str, name: &str) -> String {
    format!("k8s:{}:{SA_PREFIX}{namespace}:{name}", ctx.config.cluster)
}

/// The scope a binding's role reference grants: `k8s:ClusterRole:<name>` or
/// `k8s:Role:<namespace>/<name>`, the same string the authorizer's reason names.
fn role_scope(kind: &str, name: &str, namespace: Option<&str>) -> Option<String> {
    match kind {
        "ClusterRole" => Some(format!("k8s:ClusterRole:{name}")),
        "Role" => Some(format!("k8s:Role:{}/{name}", namespace?)),
        _ => None,
    }
}

/// The scope the RBAC authorizer's reason names, e.g. `RBAC: allowed by ClusterRoleBinding
/// "b" of ClusterRole "r" to ServiceAccount "sa/ns"`.
fn reason_scope(reason: &str) -> Option<String> {
    let quoted = |after: &str| -> Option<&str> {
        let rest = &reason[reason.find(after)? + after.len()..];
        rest.split('"').next()
    };
    if let Some(role) = quoted(" of ClusterRole \"") {
        return role_scope("ClusterRole", role, None);
    }
    let role = quoted(" of Role \"")?;
    let binding = quoted("RoleBinding \"")?;
    let namespace = binding.rsplit_once('/').map(|(_, ns)| ns);
    role_scope("Role", role, namespace)
}

/// Maps one audit event.
pub fn map(record: &Value, ctx: &Context<'_>) -> MapResult {
    let Some(audit_id) = s(record, &["auditID"]) else {
        return Err(Skip::new(SkipReason::ParseError, "no auditID"));
    };
    if let Some(stage) = s(record, &["stage"])
        && stage != "ResponseComplete"
    {
        return Err(Skip::new(SkipReason::DuplicateStage, stage));
    }
    let time = ["stageTimestamp", "requestReceivedTimestamp", "timestamp"]
        .iter()
        .find_map(|k| record.get(*k).and_then(time::parse))
        .ok_or_else(|| Skip::new(SkipReason::MissingTime, "no stageTimestamp"))?;
    let verb = s(record, &["verb"]).unwrap_or("");
    let resource = s(record, &["objectRef", "resource"]).unwrap_or("");
    let subresource = s(record, &["objectRef", "subresource"]);
    let namespace = s(record, &["objectRef", "namespace"]);
    let code = record
        .get("responseStatus")
        .and_then(|r| r.get("code"))
        .and_then(Value::as_i64)
        .unwrap_or(200);
    let user = s(record, &["user", "username"]).unwrap_or("");
    let actor = user
        .strip_prefix(SA_PREFIX)
        .and_then(|rest| rest.split_once(':'));
    let action = match subresource {
        Some(sub) => format!("{verb}:{resource}/{sub}"),
        None => format!("{verb}:{resource}"),
    };
    let mut events = Vec::new();
    let mut lifecycle_skip = None;
    if (200..300).contains(&code) {
        lifecycle(
            record,
            ctx,
            time,
            verb,
            resource,
            subresource,
            namespace,
            user,
            &mut events,
        )
        .unwrap_or_else(|skip| lifecycle_skip = Some(skip));
    } else if actor.is_none() && code >= 400 {
        return Err(Skip::new(SkipReason::FailedRequest, action));
    }
    if let Some((sa_ns, sa_name)) = actor {
        if sa_ns == "kube-system" && !ctx.config.include_system_service_accounts {
            if events.is_empty() {
                return Err(Skip::new(SkipReason::NotNhi, "kube-system controller"));
            }
        } else {
            events.push(activity(record, ctx, time, sa_ns, sa_name, &action, code));
        }
    }
    if events.is_empty() {
        return Err(lifecycle_skip.unwrap_or_else(|| {
            Skip::new(
                if actor.is_none() {
                    SkipReason::NotNhi
                } else {
                    SkipReason::UnmappedAction
                },
                action,
            )
        }));
    }
    Ok(Mapped {
        record_id: audit_id.to_owned(),
        events,
    })
}

/// The lifecycle events of a successful request, whoever made it.
#[expect(
    clippy::too_many_arguments,
    reason = "the parsed parts of one audit event"
)]
fn lifecycle(
    record: &Value,
    ctx: &Context<'_>,
    time: i64,
    verb: &str,
    resource: &str,
    subresource: Option<&str>,
    namespace: Option<&str>,
    user: &str,
    events: &mut Vec<Out>,
) -> Result<(), Skip> {
    let name = s(record, &["objectRef", "name"])
        .or_else(|| s(record, &["requestObject", "metadata", "name"]))
        .or_else(|| s(record, &["responseObject", "metadata", "name"]));
    let ns = namespace.unwrap_or("default");
    match (verb, resource, subresource) {
        ("create", "serviceaccounts", None) => {
            let Some(name) = name else { return Ok(()) };
            let identity = sa_key(ctx, ns, name);
            events.push(
                Out::new(EventType::IdentityRegistered, time, &identity)
                    .with("kind", "service_account")
                    .with("name", name),
            );
            let annotations = record
                .get("requestObject")
                .and_then(|o| o.get("metadata"))
                .and_then(|m| m.get("annotations"))
                .and_then(Value::as_object);
            let (owner, custodian) = ctx.config.owners(
                annotations
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))),
            );
            if owner.is_some() || custodian.is_some() {
                events.push(
                    Out::new(EventType::OwnerAssigned, time, identity)
                        .with_opt("business_owner", owner)
                        .with_opt("technical_custodian", custodian),
                );
            }
        }
        ("delete", "serviceaccounts", None) => {
            if let Some(name) = name {
                events.push(
                    Out::new(EventType::Offboarded, time, sa_key(ctx, ns, name))
                        .with("reason", "k8s:delete:serviceaccounts"),
                );
            }
        }
        ("create", "serviceaccounts", Some("token")) => {
            if user.starts_with("system:node:") && !ctx.config.include_system_service_accounts {
                return Err(Skip::new(SkipReason::NotNhi, "kubelet TokenRequest"));
            }
            let Some(name) = s(record, &["objectRef", "name"]) else {
                return Ok(());
            };
            let audit_id = s(record, &["auditID"]).unwrap_or("");
            let credential = s(
                record,
                &[
                    "annotations",
                    "authentication.kubernetes.io/issued-credential-id",
                ],
            )
            .map_or_else(|| format!("k8s-token:{audit_id}"), str::to_owned);
            let seconds = record
                .get("requestObject")
                .and_then(|o| o.get("spec"))
                .and_then(|sp| sp.get("expirationSeconds"))
                .and_then(Value::as_i64);
            let expires = record
                .get("responseObject")
                .and_then(|o| o.get("status"))
                .and_then(|st| st.get("expirationTimestamp"))
                .and_then(time::parse)
                .or_else(|| seconds.map(|sec| time + sec.clamp(0, 1 << 32) * 1_000_000));
            events.push(
                Out::new(EventType::CredentialIssued, time, sa_key(ctx, ns, name))
                    .with("credential", credential)
                    .with("kind", "workload_svid")
                    .with_time("expires", expires),
            );
        }
        ("create", "secrets", None) => {
            let Some(object) = record.get("requestObject").filter(|o| o.is_object()) else {
                return Err(Skip::new(
                    SkipReason::InsufficientAuditLevel,
                    "secret create without its object (Metadata level)",
                ));
            };
            if s(object, &["type"]) != Some("kubernetes.io/service-account-token") {
                return Ok(());
            }
            let sa = s(
                object,
                &[
                    "metadata",
                    "annotations",
                    "kubernetes.io/service-account.name",
                ],
            );
            if let (Some(sa), Some(secret)) = (sa, name) {
                events.push(
                    Out::new(EventType::CredentialIssued, time, sa_key(ctx, ns, sa))
                        .with("credential", format!("k8s-secret:{ns}/{secret}"))
                        .with("kind", "api_key"),
                );
            }
        }
        ("create" | "update" | "patch", "rolebindings" | "clusterrolebindings", None) => {
            let Some(object) = record.get("requestObject").filter(|o| o.is_object()) else {
                return Err(Skip::new(
                    SkipReason::InsufficientAuditLevel,
                    "binding without its object (Metadata level)",
                ));
            };
            let scope = role_scope(
                s(object, &["roleRef", "kind"]).unwrap_or(""),
                s(object, &["roleRef", "name"]).unwrap_or(""),
                Some(ns),
            );
            let Some(scope) = scope else { return Ok(()) };
            let subjects = object.get("subjects").and_then(Value::as_array);
            for subject in subjects.into_iter().flatten() {
                if s(subject, &["kind"]) != Some("ServiceAccount") {
                    continue;
                }
                let Some(sa) = s(subject, &["name"]) else {
                    continue;
                };
                let sa_ns = s(subject, &["namespace"]).unwrap_or(ns);
                events.push(
                    Out::new(EventType::ScopeGranted, time, sa_key(ctx, sa_ns, sa))
                        .with("scope", &scope),
                );
            }
        }
        ("delete", "rolebindings" | "clusterrolebindings", None) => {
            return Err(Skip::new(
                SkipReason::NeedsState,
                "a deleted binding does not name its subjects",
            ));
        }
        _ => {}
    }
    Ok(())
}

/// A service account's request: `tool.called` when config classifies it, else
/// `credential.used`.
fn activity(
    record: &Value,
    ctx: &Context<'_>,
    time: i64,
    namespace: &str,
    name: &str,
    action: &str,
    code: i64,
) -> Out {
    let identity = sa_key(ctx, namespace, name);
    let extra = record.get("user").and_then(|u| u.get("extra"));
    let first = |key: &str| -> Option<String> {
        let v = extra?.get(key)?;
        match v {
            Value::Array(items) => items.first()?.as_str().map(str::to_owned),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    };
    let credential = first("authentication.kubernetes.io/credential-id")
        .unwrap_or_else(|| format!("k8s-sa:{namespace}/{name}"));
    let workload = first("authentication.kubernetes.io/pod-name");
    let ip = record
        .get("sourceIPs")
        .and_then(|ips| ips.get(0))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let environment = ip.as_deref().and_then(|ip| ctx.config.environment(ip));
    let tool = format!("k8s:{action}");
    match ctx.config.sensitivity(&tool, None) {
        Some(sensitivity) => {
            let scope =
                s(record, &["annotations", "authorization.k8s.io/reason"]).and_then(reason_scope);
            let outcome = match code {
                401 | 403 => "denied",
                c if c >= 400 => "error",
                _ => "success",
            };
            Out::new(EventType::ToolCalled, time, identity)
                .with("tool", tool)
                .with("credential", credential)
                .with("sensitivity", sensitivity)
                .with_list("scopes", scope)
                .with("outcome", outcome)
                .with_opt("workload", workload)
                .with_opt("environment", environment)
        }
        None => Out::new(EventType::CredentialUsed, time, identity)
            .with("credential", credential)
            .with_opt("workload", workload)
            .with_opt("environment", environment)
            .with_opt("source_ip", ip),
    }
}
