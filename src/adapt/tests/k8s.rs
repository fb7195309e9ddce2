//! Kubernetes audit events, from the `audit.k8s.io/v1` Event reference and the
//! TokenRequest and RBAC API docs.

use serde_json::{Value, json};

use super::{events, skipped, types};
use crate::adapt::{Format, SkipReason};

fn event(user: &str, verb: &str, object: Value, code: i64, extra: Value) -> String {
    let mut e = json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": format!("a-{verb}"), "stage": "ResponseComplete", "verb": verb,
        "user": {"username": user, "groups": ["system:serviceaccounts"]},
        "sourceIPs": ["10.0.0.7"], "objectRef": object,
        "responseStatus": {"code": code},
        "requestReceivedTimestamp": "2024-05-01T10:00:00.000000Z",
        "stageTimestamp": "2024-05-01T10:00:00.100000Z"});
    if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            e.insert(k.clone(), v.clone());
        }
    }
    e.to_string()
}

const SA: &str = "k8s:default:system:serviceaccount:apps:builder";

#[test]
fn token_request_issues_a_workload_svid_with_its_expiry_and_never_the_token() {
    let line = event(
        "system:serviceaccount:ci:runner",
        "create",
        json!({"resource": "serviceaccounts", "subresource": "token", "namespace": "apps", "name": "builder"}),
        201,
        json!({"annotations": {"authentication.kubernetes.io/issued-credential-id": "JTI=9f2c"},
               "requestObject": {"kind": "TokenRequest", "spec": {"audiences": ["api"], "expirationSeconds": 3600}},
               "responseObject": {"kind": "TokenRequest", "status": {"token": "eyJSECRET", "expirationTimestamp": "2024-05-01T11:00:00Z"}}}),
    );
    let out = events(Format::K8sAudit, &line);
    assert_eq!(types(&out), ["credential.issued", "tool.called"]);
    assert_eq!(out[0]["identity"], SA);
    assert_eq!(out[0]["credential"], "JTI=9f2c");
    assert_eq!(out[0]["kind"], "workload_svid");
    assert_eq!(out[0]["expires"], "2024-05-01T11:00:00Z");
    assert_eq!(out[0]["id"], "k8s-audit:a-create");
    assert!(!line.is_empty() && !out.iter().any(|e| e.to_string().contains("eyJSECRET")));
    // At Metadata level there is no expiry: a TokenRequest with none (NHI-ROT-002).
    let metadata = event(
        "system:serviceaccount:ci:runner",
        "create",
        json!({"resource": "serviceaccounts", "subresource": "token", "namespace": "apps", "name": "builder"}),
        201,
        json!({}),
    );
    let out = events(Format::K8sAudit, &metadata);
    assert_eq!(out[0]["credential"], "k8s-token:a-create");
    assert!(out[0].get("expires").is_none());
    // The kubelet's own projected-token requests are left out by default.
    let kubelet = event(
        "system:node:n1",
        "create",
        json!({"resource": "serviceaccounts", "subresource": "token", "namespace": "apps", "name": "builder"}),
        201,
        json!({}),
    );
    assert_eq!(skipped(Format::K8sAudit, &kubelet), SkipReason::NotNhi);
}

#[test]
fn bindings_to_service_accounts_are_grants() {
    let binding = json!({"kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "apps"},
        "roleRef": {"kind": "Role", "name": "deployer", "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [{"kind": "ServiceAccount", "name": "builder", "namespace": "apps"},
                     {"kind": "User", "name": "alice"}]});
    let line = event(
        "alice",
        "create",
        json!({"resource": "rolebindings", "namespace": "apps", "name": "rb", "apiGroup": "rbac.authorization.k8s.io"}),
        201,
        json!({"requestObject": binding}),
    );
    let out = events(Format::K8sAudit, &line);
    assert_eq!(types(&out), ["identity.scope_granted"]);
    assert_eq!(out[0]["identity"], SA);
    assert_eq!(out[0]["scope"], "k8s:Role:apps/deployer");
    let cluster = json!({"kind": "ClusterRoleBinding", "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "builder", "namespace": "apps"}]});
    let line = event(
        "alice",
        "create",
        json!({"resource": "clusterrolebindings", "name": "crb"}),
        201,
        json!({"requestObject": cluster}),
    );
    assert_eq!(
        events(Format::K8sAudit, &line)[0]["scope"],
        "k8s:ClusterRole:cluster-admin"
    );
    let delete = event(
        "alice",
        "delete",
        json!({"resource": "clusterrolebindings", "name": "crb"}),
        200,
        json!({}),
    );
    assert_eq!(skipped(Format::K8sAudit, &delete), SkipReason::NeedsState);
}

#[test]
fn service_account_requests_are_uses_and_secret_reads_and_exec_are_restricted_calls() {
    let extra = json!({"user": {"username": "system:serviceaccount:apps:builder",
        "extra": {"authentication.kubernetes.io/credential-id": ["JTI=9f2c"],
                  "authentication.kubernetes.io/pod-name": ["builder-7d9"]}},
        "annotations": {"authorization.k8s.io/reason": "RBAC: allowed by RoleBinding \"rb/apps\" of Role \"deployer\" to ServiceAccount \"builder/apps\""}});
    let list = event(
        "",
        "list",
        json!({"resource": "pods", "namespace": "apps"}),
        200,
        extra.clone(),
    );
    let out = events(Format::K8sAudit, &list);
    assert_eq!(types(&out), ["credential.used"]);
    assert_eq!(out[0]["credential"], "JTI=9f2c");
    assert_eq!(out[0]["workload"], "builder-7d9");
    assert_eq!(out[0]["source_ip"], "10.0.0.7");
    let get_secret = event(
        "",
        "get",
        json!({"resource": "secrets", "namespace": "apps", "name": "db"}),
        200,
        extra.clone(),
    );
    let out = events(Format::K8sAudit, &get_secret);
    assert_eq!(out[0]["tool"], "k8s:get:secrets");
    assert_eq!(out[0]["sensitivity"], "restricted");
    assert_eq!(out[0]["scopes"], json!(["k8s:Role:apps/deployer"]));
    let exec = event(
        "",
        "create",
        json!({"resource": "pods", "subresource": "exec", "namespace": "apps", "name": "p"}),
        403,
        extra,
    );
    let out = events(Format::K8sAudit, &exec);
    assert_eq!(out[0]["tool"], "k8s:create:pods/exec");
    assert_eq!(out[0]["outcome"], "denied");
}

#[test]
fn service_account_lifecycle_and_stages() {
    let create = event(
        "alice",
        "create",
        json!({"resource": "serviceaccounts", "namespace": "apps", "name": "builder"}),
        201,
        json!({"requestObject": {"metadata": {"name": "builder", "annotations": {"nhi-drift/owner": "team-a"}}}}),
    );
    let out = events(Format::K8sAudit, &create);
    assert_eq!(
        types(&out),
        ["identity.registered", "identity.owner_assigned"]
    );
    assert_eq!(out[1]["business_owner"], "team-a");
    let delete = event(
        "alice",
        "delete",
        json!({"resource": "serviceaccounts", "namespace": "apps", "name": "builder"}),
        200,
        json!({}),
    );
    assert_eq!(
        events(Format::K8sAudit, &delete)[0]["type"],
        "identity.offboarded"
    );
    let started = create.replace("ResponseComplete", "ResponseStarted");
    assert_eq!(
        skipped(Format::K8sAudit, &started),
        SkipReason::DuplicateStage
    );
    let secret = event(
        "alice",
        "create",
        json!({"resource": "secrets", "namespace": "apps", "name": "builder-token"}),
        201,
        json!({"requestObject": {"type": "kubernetes.io/service-account-token",
               "metadata": {"name": "builder-token", "annotations": {"kubernetes.io/service-account.name": "builder"}},
               "data": {"token": "c2VjcmV0"}}}),
    );
    let out = events(Format::K8sAudit, &secret);
    assert_eq!(out[0]["credential"], "k8s-secret:apps/builder-token");
    assert_eq!(out[0]["kind"], "api_key");
    let metadata = event(
        "alice",
        "create",
        json!({"resource": "secrets", "namespace": "apps", "name": "x"}),
        201,
        json!({}),
    );
    assert_eq!(
        skipped(Format::K8sAudit, &metadata),
        SkipReason::InsufficientAuditLevel
    );
}

#[test]
fn a_skipped_secret_write_keeps_none_of_the_secret() {
    // A person creating a Secret is no NHI event: skipped, with the record as payload.
    let line = event(
        "alice@corp.example",
        "create",
        json!({"resource": "secrets", "namespace": "prod", "name": "db"}),
        201,
        json!({"requestObject": {"kind": "Secret", "metadata": {"name": "db"},
                                 "data": {"db-pass": "c3VwZXJzZWNyZXQ="},
                                 "stringData": {"api-key": "plain-secret-123"}},
               "responseObject": {"kind": "Secret", "data": {"db-pass": "c3VwZXJzZWNyZXQ="}}}),
    );
    let adapted = super::adapt_with(Format::K8sAudit, &line, &super::config());
    assert!(adapted.events.is_empty());
    let [skip] = adapted.skipped.as_slice() else {
        panic!("one skip: {:?}", adapted.skipped);
    };
    let written = skip.to_json(Format::K8sAudit).to_string();
    for secret in ["c3VwZXJzZWNyZXQ=", "plain-secret-123"] {
        assert!(!written.contains(secret), "{written}");
    }
    assert!(
        written.contains("\\\"resource\\\":\\\"secrets\\\""),
        "{written}"
    );
}
