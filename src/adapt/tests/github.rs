//! GitHub organisation audit events, from GitHub's audit log event reference.

use serde_json::json;

use super::{events, skipped, types};
use crate::adapt::{Format, SkipReason};

fn event(action: &str, extra: serde_json::Value) -> String {
    let mut e = json!({"_document_id": format!("doc-{action}"), "action": action, "actor": "octocat",
        "org": "acme", "@timestamp": 1_714_557_600_000_i64});
    if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            e.insert(k.clone(), v.clone());
        }
    }
    e.to_string()
}

#[test]
fn app_installations_and_their_repositories() {
    let out = events(
        Format::GithubAudit,
        &event(
            "integration_installation.create",
            json!({"integration": "deploy-bot", "name": "deploy-bot", "repositories": ["acme/api"]}),
        ),
    );
    assert_eq!(
        types(&out),
        [
            "identity.registered",
            "identity.vendor_linked",
            "identity.scope_granted"
        ]
    );
    assert_eq!(out[0]["identity"], "github:acme:app:deploy-bot");
    assert_eq!(out[0]["kind"], "api_client");
    assert_eq!(out[0]["time"], "2024-05-01T10:00:00Z");
    assert_eq!(out[2]["scope"], "repo:acme/api");
    assert_eq!(
        out[0]["id"],
        "github-audit:doc-integration_installation.create"
    );
    let removed = events(
        Format::GithubAudit,
        &event(
            "integration_installation.repositories_removed",
            json!({"integration": "deploy-bot", "repositories_removed": ["acme/api", "acme/web"]}),
        ),
    );
    assert_eq!(
        types(&removed),
        ["identity.scope_revoked", "identity.scope_revoked"]
    );
    let destroy = events(
        Format::GithubAudit,
        &event(
            "integration_installation.destroy",
            json!({"integration": "deploy-bot"}),
        ),
    );
    assert_eq!(destroy[0]["type"], "identity.offboarded");
}

#[test]
fn fine_grained_tokens_are_issued_with_permissions_and_used() {
    let out = events(
        Format::GithubAudit,
        &event(
            "personal_access_token.access_granted",
            json!({"token_id": 4242, "user": "octocat", "permissions": {"contents": "read", "metadata": "read"},
               "token_expiration": "2024-07-30T00:00:00Z"}),
        ),
    );
    assert_eq!(
        types(&out),
        ["credential.issued", "identity.owner_assigned"]
    );
    assert_eq!(out[0]["identity"], "github:acme:pat:4242");
    assert_eq!(out[0]["credential"], "github-pat:4242");
    assert_eq!(out[0]["scopes"], json!(["contents:read", "metadata:read"]));
    assert_eq!(out[0]["expires"], "2024-07-30T00:00:00Z");
    assert_eq!(out[1]["technical_custodian"], "octocat");
    let used = events(
        Format::GithubAudit,
        &event(
            "git.clone",
            json!({"token_id": 4242, "programmatic_access_type": "Fine-grained personal access token", "user_agent": "git/2.40"}),
        ),
    );
    assert_eq!(types(&used), ["credential.used"]);
    assert_eq!(used[0]["workload"], "git/2.40");
    let revoked = events(
        Format::GithubAudit,
        &event(
            "personal_access_token.access_revoked",
            json!({"token_id": 4242}),
        ),
    );
    assert_eq!(revoked[0]["type"], "credential.revoked");
}

#[test]
fn oauth_secrets_deploy_keys_and_departures() {
    let secret = events(
        Format::GithubAudit,
        &event(
            "oauth_application.generate_client_secret",
            json!({"oauth_application_id": 77}),
        ),
    );
    assert_eq!(secret[0]["credential"], "github:acme:oauth_app:77:secret");
    assert_eq!(secret[0]["kind"], "client_secret");
    let key = events(
        Format::GithubAudit,
        &event(
            "public_key.create",
            json!({"repo": "acme/api", "fingerprint": "SHA256:abc"}),
        ),
    );
    assert_eq!(key[0]["kind"], "ssh_key");
    assert_eq!(key[0]["identity"], "github:acme:deploy_keys:acme/api");
    let gone = events(
        Format::GithubAudit,
        &event("org.remove_member", json!({"user": "mallory"})),
    );
    assert_eq!(gone[0]["type"], "principal.departed");
    assert!(gone[0].get("identity").is_none());
    assert_eq!(
        skipped(Format::GithubAudit, &event("repo.create", json!({}))),
        SkipReason::UnmappedAction
    );
    assert_eq!(
        skipped(Format::GithubAudit, &event("public_key.create", json!({}))),
        SkipReason::NotNhi
    );
}

#[test]
fn panther_sample_installation_with_a_text_timestamp() {
    let line = r#"{"_document_id":"A-2345","action":"integration_installation.create","actor":"user_name","at_sign_timestamp":"2022-12-11 05:28:05.542","created_at":"2022-12-11 05:28:05.542","name":"Microsoft Teams for GitHub","org":"your-organization"}"#;
    let out = events(Format::GithubAudit, line);
    assert_eq!(
        out[0]["identity"],
        "github:your-organization:app:Microsoft Teams for GitHub"
    );
    assert_eq!(out[0]["time"], "2022-12-11T05:28:05.542Z");
}
