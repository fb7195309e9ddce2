//! AWS CloudTrail (`cloudtrail`): one record to the lifecycle events it implies for its
//! target (users, roles, keys, login profiles, policies, STS sessions) plus the caller's
//! use of its credential (`credential.used`, or `tool.called` for classified actions).
//!
//! Identities are `arn:aws:iam::<account>:user/<name>` and `…:role/<name>` (paths
//! dropped); a role session acts as its role. Credentials are access key ids and
//! `login-profile:<user arn>` for console passwords. Session tokens are never read.

use serde_json::Value;

use super::{AdaptedEvent, Context, MapResult, Mapped, Out, Skip, SkipReason, time};
use crate::event::{Body, CredentialKind, Decoder, EventType};

/// Lifecycle actions: when they fail, the record is `failed_request`.
const LIFECYCLE: [&str; 27] = [
    "CreateUser",
    "DeleteUser",
    "CreateRole",
    "DeleteRole",
    "TagUser",
    "TagRole",
    "UpdateAssumeRolePolicy",
    "CreateAccessKey",
    "DeleteAccessKey",
    "UpdateAccessKey",
    "CreateLoginProfile",
    "DeleteLoginProfile",
    "UpdateLoginProfile",
    "AttachUserPolicy",
    "AttachRolePolicy",
    "PutUserPolicy",
    "PutRolePolicy",
    "DetachUserPolicy",
    "DetachRolePolicy",
    "DeleteUserPolicy",
    "DeleteRolePolicy",
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "GetSessionToken",
    "GetFederationToken",
    "ConsoleLogin",
];

/// STS actions that issue a session credential.
const ISSUES_SESSION: [&str; 5] = [
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "GetSessionToken",
    "GetFederationToken",
];

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

/// The canonical identity of an IAM user or role ARN (path dropped), and whether it is an
/// AWS service-linked role.
fn canonical(arn: &str) -> Option<(String, bool)> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, _partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if prefix != "arn" || service != "iam" || account.is_empty() {
        return None;
    }
    let (kind, rest) = resource.split_once('/')?;
    if kind != "user" && kind != "role" {
        return None;
    }
    let name = rest.rsplit('/').next().filter(|n| !n.is_empty())?;
    let service_linked = rest.starts_with("aws-service-role/");
    Some((
        format!("arn:aws:iam::{account}:{kind}/{name}"),
        service_linked,
    ))
}

/// Who made the call, as an identity key, or why the caller is not an NHI.
fn caller(record: &Value) -> Result<String, Skip> {
    let ui = record.get("userIdentity").unwrap_or(&Value::Null);
    let kind = str_at(ui, &["type"]).unwrap_or("");
    let arn = match kind {
        "IAMUser" => str_at(ui, &["arn"]),
        "AssumedRole" | "FederatedUser" => str_at(ui, &["sessionContext", "sessionIssuer", "arn"]),
        _ => return Err(Skip::new(SkipReason::NotNhi, format!("caller type {kind}"))),
    };
    let Some(arn) = arn else {
        return Err(Skip::new(SkipReason::NotNhi, "caller has no IAM ARN"));
    };
    match canonical(arn) {
        Some((_, true)) => Err(Skip::new(SkipReason::NotNhi, "AWS service-linked role")),
        Some((identity, false)) => Ok(identity),
        None => Err(Skip::new(
            SkipReason::NotNhi,
            "caller is not an IAM user or role",
        )),
    }
}

fn account(record: &Value) -> Option<&str> {
    str_at(record, &["recipientAccountId"])
        .or_else(|| str_at(record, &["userIdentity", "accountId"]))
}

fn user_key(record: &Value, name: &str) -> Option<String> {
    Some(format!("arn:aws:iam::{}:user/{name}", account(record)?))
}

fn role_key(record: &Value, name: &str) -> Option<String> {
    Some(format!("arn:aws:iam::{}:role/{name}", account(record)?))
}

/// The identity a user-targeted action is about: `requestParameters.userName`, else the
/// caller when the caller is a user.
fn target_user(record: &Value, caller: Option<&str>) -> Option<String> {
    match str_at(record, &["requestParameters", "userName"]) {
        Some(name) => user_key(record, name),
        None => caller.filter(|c| c.contains(":user/")).map(str::to_owned),
    }
}

/// `key`/`value` tag pairs (`[{"key": …, "value": …}]`, either case).
fn tags(list: Option<&Value>) -> Vec<(&str, &str)> {
    let items = list
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    items
        .iter()
        .filter_map(|t| {
            let k = t.get("key").or_else(|| t.get("Key"))?.as_str()?;
            let v = t.get("value").or_else(|| t.get("Value"))?.as_str()?;
            Some((k, v))
        })
        .collect()
}

/// Vendors a trust policy lets in: other AWS accounts (`aws-account:<id>`) and web
/// identity providers (`oidc:<provider>`).
fn trusted_vendors(document: Option<&str>, own_account: Option<&str>) -> Vec<String> {
    let Some(doc) = document.and_then(|d| serde_json::from_str::<Value>(d).ok()) else {
        return Vec::new();
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let mut vendors = Vec::new();
    let as_list = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    for statement in statements {
        let principal = statement.get("Principal");
        for aws in as_list(principal.and_then(|p| p.get("AWS"))) {
            let id = if aws.bytes().all(|b| b.is_ascii_digit()) {
                Some(aws.as_str())
            } else {
                aws.split(':').nth(4)
            };
            if let Some(id) = id.filter(|id| !id.is_empty() && Some(*id) != own_account) {
                vendors.push(format!("aws-account:{id}"));
            }
        }
        for federated in as_list(principal.and_then(|p| p.get("Federated"))) {
            let provider = federated
                .split_once(":oidc-provider/")
                .or_else(|| federated.split_once(":saml-provider/"))
                .map_or(federated.as_str(), |(_, p)| p);
            vendors.push(format!("oidc:{provider}"));
        }
    }
    vendors.sort();
    vendors.dedup();
    vendors
}

fn outcome(record: &Value) -> &'static str {
    match str_at(record, &["errorCode"]) {
        None => "success",
        Some(code) if code.contains("AccessDenied") || code.contains("Unauthorized") => "denied",
        Some(_) => "error",
    }
}

/// Maps one CloudTrail record.
pub fn map(record: &Value, ctx: &Context<'_>) -> MapResult {
    if !record.is_object() {
        return Err(Skip::new(SkipReason::ParseError, "record is not an object"));
    }
    // Exports that dropped `eventID` get a digest of the record: still deterministic, so
    // a re-read deduplicates.
    let record_id = str_at(record, &["eventID"]).map_or_else(
        || {
            format!(
                "h{:016x}",
                xxhash_rust::xxh3::xxh3_64(record.to_string().as_bytes())
            )
        },
        str::to_owned,
    );
    let Some(name) = str_at(record, &["eventName"]) else {
        return Err(Skip::new(SkipReason::ParseError, "no eventName"));
    };
    let time = record
        .get("eventTime")
        .or_else(|| record.get("@timestamp"))
        .and_then(time::parse)
        .ok_or_else(|| Skip::new(SkipReason::MissingTime, "no eventTime"))?;
    let service = str_at(record, &["eventSource"])
        .and_then(|s| s.split('.').next())
        .unwrap_or("aws");
    let failed = str_at(record, &["errorCode"]).is_some()
        || (name == "ConsoleLogin"
            && str_at(record, &["responseElements", "ConsoleLogin"]) != Some("Success"));
    if failed && LIFECYCLE.contains(&name) {
        return Err(Skip::new(SkipReason::FailedRequest, name));
    }
    let forwarded = str_at(record, &["userIdentity", "invokedBy"]).is_some();
    let mut events = Vec::new();
    // A session issued by a service on an identity's behalf (an instance profile, a
    // Lambda role) is still that identity's credential.
    if ISSUES_SESSION.contains(&name) {
        let caller = caller(record).ok();
        if let Some(issued) = session_issued(record, name, time, caller.as_deref()) {
            if ctx
                .config
                .is_human(issued.identity.as_deref().unwrap_or(""))
            {
                if forwarded || caller.is_none() {
                    return Err(Skip::new(SkipReason::NotNhi, "session of a human"));
                }
            } else {
                events.push(issued);
            }
        }
        if forwarded || caller.is_none() {
            return if events.is_empty() {
                Err(Skip::new(
                    if forwarded {
                        SkipReason::ForwardedServiceCall
                    } else {
                        SkipReason::NotNhi
                    },
                    name,
                ))
            } else {
                Ok(Mapped { record_id, events })
            };
        }
    } else if forwarded {
        return Err(Skip::new(SkipReason::ForwardedServiceCall, name));
    }
    let actor = caller(record)?;
    if ctx.config.is_human(&actor) {
        return Err(Skip::new(SkipReason::NotNhi, "human by config"));
    }
    if !failed {
        lifecycle(record, name, time, &actor, ctx, &mut events);
    }
    // Targets that are humans by config are left out; the caller's use still counts.
    events.retain(|e| {
        e.identity
            .as_deref()
            .is_none_or(|i| i == actor || !ctx.config.is_human(i))
    });
    activity(record, name, service, time, &actor, ctx, &mut events);
    if events.is_empty() {
        return Err(Skip::new(SkipReason::UnlinkableCredential, name));
    }
    Ok(Mapped { record_id, events })
}

/// The `credential.issued` of a successful STS issuance.
fn session_issued(record: &Value, name: &str, time: i64, caller: Option<&str>) -> Option<Out> {
    let credentials = record.get("responseElements")?.get("credentials")?;
    let key = str_at(credentials, &["accessKeyId"])?;
    let expires = credentials.get("expiration").and_then(time::parse);
    let identity = match name {
        "GetSessionToken" | "GetFederationToken" => caller?.to_owned(),
        _ => {
            let (role, service_linked) =
                canonical(str_at(record, &["requestParameters", "roleArn"])?)?;
            if service_linked {
                return None;
            }
            role
        }
    };
    Some(
        Out::new(EventType::CredentialIssued, time, identity)
            .with("credential", key)
            .with("kind", "oauth_token")
            .with_time("expires", expires),
    )
}

/// The events a successful lifecycle action implies for its target.
fn lifecycle(
    record: &Value,
    name: &str,
    time: i64,
    actor: &str,
    ctx: &Context<'_>,
    events: &mut Vec<Out>,
) {
    let params = record.get("requestParameters").unwrap_or(&Value::Null);
    let response = record.get("responseElements").unwrap_or(&Value::Null);
    let user = || target_user(record, Some(actor));
    let role = || str_at(params, &["roleName"]).and_then(|n| role_key(record, n));
    let owners = |identity: &str, list: Option<&Value>, events: &mut Vec<Out>| {
        let (owner, custodian) = ctx.config.owners(tags(list));
        if owner.is_some() || custodian.is_some() {
            events.push(
                Out::new(EventType::OwnerAssigned, time, identity)
                    .with_opt("business_owner", owner)
                    .with_opt("technical_custodian", custodian),
            );
        }
    };
    let login_profile = |user: &str| format!("login-profile:{user}");
    match name {
        "CreateUser" => {
            let Some(name) = str_at(params, &["userName"]) else {
                return;
            };
            let Some(identity) = user_key(record, name) else {
                return;
            };
            events.push(
                Out::new(EventType::IdentityRegistered, time, &identity)
                    .with("kind", "service_account")
                    .with("name", name),
            );
            owners(&identity, params.get("tags"), events);
        }
        "CreateRole" => {
            let Some(name) = str_at(params, &["roleName"]) else {
                return;
            };
            if str_at(params, &["path"]).is_some_and(|p| p.starts_with("/aws-service-role/")) {
                return;
            }
            let Some(identity) = role_key(record, name) else {
                return;
            };
            let vendors = trusted_vendors(
                str_at(params, &["assumeRolePolicyDocument"]),
                account(record),
            );
            events.push(
                Out::new(EventType::IdentityRegistered, time, &identity)
                    .with("kind", "workload")
                    .with("name", name)
                    .with_list("vendors", vendors),
            );
            owners(&identity, params.get("tags"), events);
        }
        "TagUser" => {
            if let Some(identity) = user() {
                owners(&identity, params.get("tags"), events);
            }
        }
        "TagRole" => {
            if let Some(identity) = role() {
                owners(&identity, params.get("tags"), events);
            }
        }
        "UpdateAssumeRolePolicy" => {
            if let Some(identity) = role() {
                for vendor in trusted_vendors(str_at(params, &["policyDocument"]), account(record))
                {
                    events.push(
                        Out::new(EventType::VendorLinked, time, &identity).with("vendor", vendor),
                    );
                }
            }
        }
        "DeleteUser" | "DeleteRole" => {
            let identity = if name == "DeleteUser" {
                str_at(params, &["userName"]).and_then(|n| user_key(record, n))
            } else {
                role()
            };
            if let Some(identity) = identity {
                events.push(
                    Out::new(EventType::Offboarded, time, identity)
                        .with("reason", format!("iam:{name}")),
                );
            }
        }
        "CreateAccessKey" => {
            let key = str_at(response, &["accessKey", "accessKeyId"]);
            let owner = str_at(response, &["accessKey", "userName"])
                .and_then(|n| user_key(record, n))
                .or_else(user);
            if let (Some(key), Some(owner)) = (key, owner) {
                events.push(
                    Out::new(EventType::CredentialIssued, time, owner)
                        .with("credential", key)
                        .with("kind", "api_key"),
                );
            }
        }
        "DeleteAccessKey" | "UpdateAccessKey" => {
            if name == "UpdateAccessKey" && str_at(params, &["status"]) != Some("Inactive") {
                return;
            }
            if let (Some(key), Some(owner)) = (str_at(params, &["accessKeyId"]), user()) {
                events.push(
                    Out::new(EventType::CredentialRevoked, time, owner).with("credential", key),
                );
            }
        }
        "CreateLoginProfile" | "DeleteLoginProfile" | "UpdateLoginProfile" => {
            let Some(owner) = user() else {
                return;
            };
            let credential = login_profile(&owner);
            let out = match name {
                "CreateLoginProfile" => Out::new(EventType::CredentialIssued, time, owner)
                    .with("credential", credential)
                    .with("kind", "password"),
                "DeleteLoginProfile" => Out::new(EventType::CredentialRevoked, time, owner)
                    .with("credential", credential),
                _ => Out::new(EventType::CredentialRotated, time, owner)
                    .with("credential", credential),
            };
            events.push(out);
        }
        "AttachUserPolicy" | "AttachRolePolicy" | "DetachUserPolicy" | "DetachRolePolicy" => {
            let target = if name.contains("User") {
                user()
            } else {
                role()
            };
            let ty = if name.starts_with("Attach") {
                EventType::ScopeGranted
            } else {
                EventType::ScopeRevoked
            };
            if let (Some(target), Some(policy)) = (target, str_at(params, &["policyArn"])) {
                events.push(Out::new(ty, time, target).with("scope", policy));
            }
        }
        "PutUserPolicy" | "PutRolePolicy" | "DeleteUserPolicy" | "DeleteRolePolicy" => {
            let target = if name.contains("User") {
                user()
            } else {
                role()
            };
            let ty = if name.starts_with("Put") {
                EventType::ScopeGranted
            } else {
                EventType::ScopeRevoked
            };
            if let (Some(target), Some(policy)) = (target, str_at(params, &["policyName"])) {
                events.push(Out::new(ty, time, target).with("scope", format!("inline:{policy}")));
            }
        }
        _ => {}
    }
}

/// The caller's use of its credential: `tool.called` when config classifies the action,
/// else `credential.used`. An IAM user's session key (`ASIA…`, from the console or
/// `GetSessionToken`) also gets an issue at the session's start, once per key, so it
/// expires instead of living on as an implicit credential.
fn activity(
    record: &Value,
    name: &str,
    service: &str,
    time: i64,
    actor: &str,
    ctx: &Context<'_>,
    events: &mut Vec<Out>,
) {
    let ui = record.get("userIdentity").unwrap_or(&Value::Null);
    let credential = match str_at(ui, &["accessKeyId"]) {
        Some(key) => key.to_owned(),
        None if name == "ConsoleLogin" && actor.contains(":user/") => {
            format!("login-profile:{actor}")
        }
        None => return,
    };
    if str_at(ui, &["type"]) == Some("IAMUser") && credential.starts_with("ASIA") {
        let started = record
            .get("userIdentity")
            .and_then(|u| u.get("sessionContext"))
            .and_then(|s| s.get("attributes"))
            .and_then(|a| a.get("creationDate"))
            .and_then(time::parse);
        if let Some(started) = started.filter(|s| *s <= time) {
            events.push(
                Out::new(EventType::CredentialIssued, started, actor)
                    .with("credential", &credential)
                    .with("kind", "oauth_token")
                    .with_time("expires", Some(started + ctx.config.session_ttl.0))
                    .with_id(format!("sts-issue:{credential}")),
            );
        }
    }
    let ip =
        str_at(record, &["sourceIPAddress"]).filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    let workload = str_at(record, &["vpcEndpointId"]).or(ip);
    let environment = ip.and_then(|ip| ctx.config.environment(ip));
    let tool = format!("{service}:{name}");
    let params = record.get("requestParameters").and_then(Value::as_object);
    let out = match ctx.config.sensitivity(&tool, params) {
        Some(sensitivity) => Out::new(EventType::ToolCalled, time, actor)
            .with("tool", tool)
            .with("credential", credential)
            .with("sensitivity", sensitivity)
            .with("outcome", outcome(record)),
        None => Out::new(EventType::CredentialUsed, time, actor)
            .with("credential", credential)
            .with_opt("source_ip", ip),
    };
    events.push(
        out.with_opt("workload", workload)
            .with_opt("environment", environment),
    );
}

/// Ends the sessions of deleted roles: a role session's requests are authorised by the
/// role's policies, so once `DeleteRole` succeeds its unexpired session keys can do
/// nothing. A single record does not say which sessions a role has, so this runs over a
/// whole adapted input (sorted): for each role offboarded by `DeleteRole`, a
/// `credential.revoked` for every session key issued to it before and not yet expired.
pub fn end_deleted_role_sessions(events: &mut Vec<AdaptedEvent>, decoder: &Decoder) {
    use std::collections::BTreeMap;
    let mut sessions: BTreeMap<String, Vec<(String, Option<i64>)>> = BTreeMap::new();
    let mut added = Vec::new();
    for event in events.iter() {
        let Ok(decoded) = decoder.decode(event.line.as_bytes()) else {
            continue;
        };
        let Some(identity) = decoded.identity.as_deref().filter(|i| i.contains(":role/")) else {
            continue;
        };
        match &decoded.body {
            Body::CredentialIssued {
                credential,
                kind: CredentialKind::OauthToken,
                expires,
                ..
            } => sessions
                .entry(identity.to_owned())
                .or_default()
                .push((credential.clone(), *expires)),
            Body::Offboarded { reason } if reason.as_deref() == Some("iam:DeleteRole") => {
                for (credential, expires) in sessions.remove(identity).unwrap_or_default() {
                    if expires.is_some_and(|e| e <= decoded.time) {
                        continue;
                    }
                    let out = Out::new(EventType::CredentialRevoked, decoded.time, identity)
                        .with("credential", &credential);
                    let id = format!("{}:revoke:{credential}", decoded.id);
                    let line = out.to_json(&id, "aws").to_string();
                    if decoder.decode(line.as_bytes()).is_ok() {
                        added.push(AdaptedEvent {
                            time: decoded.time,
                            activity: false,
                            id,
                            line,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    if !added.is_empty() {
        events.append(&mut added);
        super::sort_events(events);
    }
}
