//! Vault audit entries, from the audit device docs (`audit/types.go`): request and
//! response entries with HMAC'd tokens and accessors.

use serde_json::{Value, json};

use super::{events, skipped, types};
use crate::adapt::{Format, SkipReason};

fn response(path: &str, operation: &str, auth: Value, resp: Value, data: Value) -> String {
    json!({"time": "2024-05-01T10:00:00.000000Z", "type": "response",
        "auth": auth,
        "request": {"id": format!("req-{path}"), "operation": operation, "path": path,
                    "mount_point": path.split('/').next().map(|m| format!("{m}/")),
                    "client_token": "hmac-sha256:CLIENT-TOKEN-HMAC", "remote_address": "10.0.0.9",
                    "data": data},
        "response": resp})
    .to_string()
}

fn caller() -> Value {
    json!({"client_token": "hmac-sha256:CLIENT-TOKEN-HMAC", "accessor": "hmac-sha256:CALLER-ACC",
           "display_name": "approle", "entity_id": "ent-1", "policies": ["default", "ci"],
           "policy_results": {"allowed": true, "granting_policies": [{"name": "ci", "type": "acl"}]},
           "metadata": {"role_name": "ci"}})
}

const ENTITY: &str = "vault:default:entity:ent-1";

#[test]
fn login_issues_a_token_with_its_ttl_and_policies_as_grants() {
    let line = response(
        "auth/approle/login",
        "update",
        json!({}),
        json!({"auth": {"client_token": "hmac-sha256:NEW-TOKEN", "accessor": "hmac-sha256:ACC-1",
               "entity_id": "ent-1", "token_policies": ["default", "ci"], "token_ttl": 3600}}),
        json!({"role_id": "hmac-sha256:x"}),
    );
    let out = events(Format::VaultAudit, &line);
    assert_eq!(types(&out), ["credential.issued", "identity.scope_granted"]);
    assert_eq!(out[0]["identity"], ENTITY);
    assert_eq!(out[0]["credential"], "hmac-sha256:ACC-1");
    assert_eq!(out[0]["kind"], "oauth_token");
    assert_eq!(out[0]["expires"], "2024-05-01T11:00:00Z");
    assert_eq!(out[0]["scopes"], json!(["default", "ci"]));
    assert_eq!(out[1]["scope"], "vault:policy:ci");
    assert_eq!(out[1]["id"], format!("vault-audit:grant:{ENTITY}:ci"));
    assert!(!line.is_empty() && !out.iter().any(|e| e.to_string().contains("TOKEN")));
}

#[test]
fn token_create_renew_and_revoke() {
    let create = response(
        "auth/token/create",
        "update",
        caller(),
        json!({"auth": {"accessor": "hmac-sha256:CHILD", "entity_id": "ent-1", "token_policies": ["default"], "token_ttl": 0}}),
        Value::Null,
    );
    let out = events(Format::VaultAudit, &create);
    assert_eq!(out[0]["credential"], "hmac-sha256:CHILD");
    assert!(out[0].get("expires").is_none(), "ttl 0 = no expiry");
    let renew = response(
        "auth/token/renew-self",
        "update",
        caller(),
        json!({"auth": {"accessor": "hmac-sha256:CALLER-ACC", "entity_id": "ent-1", "token_ttl": 1800}}),
        Value::Null,
    );
    let out = events(Format::VaultAudit, &renew);
    assert_eq!(types(&out), ["credential.rotated"]);
    assert_eq!(out[0]["expires"], "2024-05-01T10:30:00Z");
    let revoke_self = response(
        "auth/token/revoke-self",
        "update",
        caller(),
        Value::Null,
        Value::Null,
    );
    let out = events(Format::VaultAudit, &revoke_self);
    assert_eq!(types(&out), ["credential.revoked"]);
    assert_eq!(out[0]["credential"], "hmac-sha256:CALLER-ACC");
    let by_accessor = response(
        "auth/token/revoke-accessor",
        "update",
        caller(),
        Value::Null,
        json!({"accessor": "hmac-sha256:CHILD"}),
    );
    assert_eq!(
        events(Format::VaultAudit, &by_accessor)[0]["credential"],
        "hmac-sha256:CHILD"
    );
    let by_token = response(
        "auth/token/revoke",
        "update",
        caller(),
        Value::Null,
        json!({"token": "hmac-sha256:T"}),
    );
    assert_eq!(
        skipped(Format::VaultAudit, &by_token),
        SkipReason::UnlinkableCredential
    );
}

#[test]
fn dynamic_secrets_leases_and_secret_reads() {
    let creds = response(
        "database/creds/readonly",
        "read",
        caller(),
        json!({"secret": {"lease_id": "database/creds/readonly/abc"}, "data": {"username": "hmac-sha256:u", "password": "hmac-sha256:p"}}),
        Value::Null,
    );
    let out = events(Format::VaultAudit, &creds);
    assert_eq!(out[0]["type"], "credential.issued");
    assert_eq!(out[0]["credential"], "database/creds/readonly/abc");
    assert_eq!(out[0]["kind"], "password");
    assert_eq!(
        out[0]["expires"], "2024-06-02T10:00:00Z",
        "default lease TTL 768h"
    );
    let revoke = response(
        "sys/leases/revoke/database/creds/readonly/abc",
        "update",
        caller(),
        Value::Null,
        Value::Null,
    );
    assert_eq!(
        events(Format::VaultAudit, &revoke)[0]["credential"],
        "database/creds/readonly/abc"
    );
    let read = response(
        "secret/data/prod/db",
        "read",
        caller(),
        json!({"data": {"password": "hmac"}}),
        Value::Null,
    );
    let out = events(Format::VaultAudit, &read);
    assert_eq!(out[0]["type"], "tool.called");
    assert_eq!(out[0]["tool"], "vault:read:secret/");
    assert_eq!(out[0]["sensitivity"], "restricted");
    assert_eq!(out[0]["scopes"], json!(["ci"]));
    assert_eq!(out[0]["credential"], "hmac-sha256:CALLER-ACC");
    assert_eq!(out[0]["workload"], "ci");
    let request = read.replace("\"type\":\"response\"", "\"type\":\"request\"");
    assert_eq!(
        skipped(Format::VaultAudit, &request),
        SkipReason::DuplicateStage
    );
}

#[test]
fn approle_secret_ids() {
    let issue = response(
        "auth/approle/role/ci/secret-id",
        "update",
        caller(),
        json!({"data": {"secret_id": "hmac-sha256:S", "secret_id_accessor": "hmac-sha256:SA", "secret_id_ttl": 600}}),
        Value::Null,
    );
    let out = events(Format::VaultAudit, &issue);
    assert_eq!(out[0]["identity"], "vault:default:approle:ci");
    assert_eq!(out[0]["kind"], "client_secret");
    assert_eq!(out[0]["credential"], "hmac-sha256:SA");
    let destroy = response(
        "auth/approle/role/ci/secret-id-accessor/destroy",
        "update",
        caller(),
        Value::Null,
        json!({"secret_id_accessor": "hmac-sha256:SA"}),
    );
    assert_eq!(
        events(Format::VaultAudit, &destroy)[0]["type"],
        "credential.revoked"
    );
}
