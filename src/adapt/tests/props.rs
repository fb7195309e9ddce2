//! Property tests over every adapter: on arbitrary JSON shaped like the sources (their
//! field names and typical values, nested at random), no adapter panics, everything it
//! emits passes the decoder, the same input gives the same events, and no value of a
//! secret-named field survives into an event or a skipped record.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::config;
use crate::adapt::{Context, Format, adapt_bytes};
use crate::event::Decoder;

/// Field names of the sources, so random records reach deep into the mappings.
const KEYS: &[&str] = &[
    "eventID",
    "eventName",
    "eventTime",
    "eventSource",
    "userIdentity",
    "type",
    "arn",
    "accessKeyId",
    "userName",
    "roleName",
    "roleArn",
    "requestParameters",
    "responseElements",
    "accessKey",
    "credentials",
    "expiration",
    "sessionContext",
    "sessionIssuer",
    "attributes",
    "creationDate",
    "errorCode",
    "invokedBy",
    "recipientAccountId",
    "accountId",
    "policyArn",
    "policyName",
    "tags",
    "key",
    "assumeRolePolicyDocument",
    "sourceIPAddress",
    "auditID",
    "stage",
    "verb",
    "objectRef",
    "resource",
    "subresource",
    "namespace",
    "name",
    "user",
    "username",
    "extra",
    "responseStatus",
    "code",
    "requestObject",
    "responseObject",
    "spec",
    "expirationSeconds",
    "roleRef",
    "subjects",
    "annotations",
    "auth",
    "request",
    "response",
    "path",
    "operation",
    "id",
    "time",
    "accessor",
    "entity_id",
    "token_ttl",
    "token_policies",
    "lease_id",
    "data",
    "action",
    "_document_id",
    "@timestamp",
    "org",
    "integration",
    "token_id",
    "repositories",
    "permissions",
    "gen_ai.operation.name",
    "gen_ai.tool.name",
    "gen_ai.agent.name",
    "traceId",
    "spanId",
    "parentSpanId",
    "startTimeUnixNano",
    "spans",
    "resourceSpans",
    "scopeSpans",
    "Records",
    "identity",
    "kind",
    "tier",
    "approved",
    "by",
    "scopes",
    "tools",
    "at",
    "departed",
    "user_creation_time",
    "TargetResources",
    "modifiedProperties",
    "displayName",
    "newValue",
    "oldValue",
    "ActivityDisplayName",
    "Id",
    "status",
];

/// Typical values of those fields.
const VALUES: &[&str] = &[
    "CreateAccessKey",
    "AssumeRole",
    "DeleteRole",
    "CreateUser",
    "ConsoleLogin",
    "GetSecretValue",
    "AttachRolePolicy",
    "PutUserPolicy",
    "CreateLoginProfile",
    "IAMUser",
    "AssumedRole",
    "AWSService",
    "arn:aws:iam::123456789012:user/u",
    "arn:aws:iam::123456789012:role/r",
    "arn:aws:iam::123456789012:role/aws-service-role/x",
    "AKIAEXAMPLE",
    "ASIAEXAMPLE",
    "iam.amazonaws.com",
    "2023-07-10T12:00:00Z",
    "Jul 10, 2023, 12:09:47 PM",
    "1758026581000000000",
    "response",
    "request",
    "ResponseComplete",
    "create",
    "delete",
    "serviceaccounts",
    "secrets",
    "clusterrolebindings",
    "ServiceAccount",
    "ClusterRole",
    "system:serviceaccount:ns:sa",
    "system:node:n",
    "execute_tool",
    "invoke_agent",
    "tools/call",
    "auth/token/create",
    "auth/approle/login",
    "auth/token/revoke-self",
    "database/creds/r",
    "sys/leases/revoke/x",
    "integration_installation.create",
    "personal_access_token.access_granted",
    "git.clone",
    "org.remove_member",
    "Update application – Certificates and secrets management",
    "Add delegated permission grant",
    "[\"[KeyIdentifier=k,KeyType=Password]\"]",
    "Application",
    "ServicePrincipal",
    "kubernetes.io/service-account-token",
    "",
    "-1",
];

/// Secret-named fields: their values must never leave an adapter.
const SECRET_KEYS: &[&str] = &[
    "sessionToken",
    "client_token",
    "token",
    "secret",
    "password",
    "secretText",
    "privateKeyData",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.args",
];

const MARK: &str = "SECRETMARK";

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0i64..2_000_000_000_000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(VALUES).prop_map(|s| Value::String(s.to_owned())),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..8).prop_map(
                |kv| {
                    Value::Object(
                        kv.into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
            // OTLP attribute entries, some secret-named.
            (prop::sample::select([KEYS, SECRET_KEYS].concat()), inner).prop_map(|(k, v)| {
                let v = if SECRET_KEYS.contains(&k) {
                    Value::String(format!("{MARK}-otlp"))
                } else {
                    v
                };
                serde_json::json!({"key": k, "value": {"stringValue": v}})
            }),
        ]
    })
}

/// Adds a secret-named field holding the marker to every object of `value`.
fn plant_secrets(value: &mut Value, n: &mut usize) {
    match value {
        Value::Object(map) => {
            let key = SECRET_KEYS[*n % SECRET_KEYS.len()];
            *n += 1;
            map.insert(key.to_owned(), Value::String(format!("{MARK}{n}")));
            map.values_mut().for_each(|v| plant_secrets(v, n));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| plant_secrets(v, n)),
        _ => {}
    }
}

fn run(format: Format, bytes: &[u8]) -> crate::adapt::Adapted {
    let config = config();
    let ctx = Context {
        config: &config,
        input: "prop",
    };
    adapt_bytes(format, bytes, &ctx, &Decoder::new(1 << 20))
}

fn check(format: Format, bytes: &[u8]) -> Result<(), TestCaseError> {
    let first = run(format, bytes);
    prop_assert!(
        first.counts.rejected.is_empty(),
        "{format:?}: rejected {:?}",
        first.counts.rejected
    );
    let decoder = Decoder::new(1 << 20);
    for event in &first.events {
        prop_assert!(
            decoder.decode(event.line.as_bytes()).is_ok(),
            "{}",
            event.line
        );
        prop_assert!(
            event.id.starts_with(&format!("{}:", format.as_str())),
            "{}",
            event.id
        );
        prop_assert!(
            !event.line.contains(MARK),
            "secret in event: {}",
            event.line
        );
    }
    for skipped in &first.skipped {
        prop_assert!(
            !skipped.payload.contains(MARK),
            "secret in skipped: {}",
            skipped.payload
        );
    }
    let second = run(format, bytes);
    prop_assert_eq!(&first.events, &second.events);
    prop_assert_eq!(&first.counts, &second.counts);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn adapters_are_total_valid_deterministic_and_keep_secrets(
        mut record in json(),
        wrap in 0..4u8,
    ) {
        let mut n = 0;
        plant_secrets(&mut record, &mut n);
        let doc = match wrap {
            0 => record,
            1 => serde_json::json!({"Records": [record]}),
            2 => Value::Array(vec![record.clone(), record]),
            _ => serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [record]}]}]}),
        };
        let bytes = doc.to_string();
        for format in Format::ADAPTED {
            check(format, bytes.as_bytes())?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for format in Format::ADAPTED {
            check(format, &bytes)?;
        }
    }
}

/// One real-shaped record per format, for mutation.
fn templates() -> Vec<(Format, Value)> {
    let t = |format, text: &str| {
        (
            format,
            serde_json::from_str::<Value>(text).expect("template"),
        )
    };
    vec![
        t(
            Format::Cloudtrail,
            r#"{"eventID":"e1","eventName":"AssumeRole","eventTime":"2023-07-10T12:00:00Z","eventSource":"sts.amazonaws.com","recipientAccountId":"123456789012","sourceIPAddress":"10.0.0.1","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/u","accessKeyId":"AKIAU","sessionContext":{"attributes":{"creationDate":"2023-07-10T11:00:00Z"}}},"requestParameters":{"roleArn":"arn:aws:iam::123456789012:role/r","userName":"t","policyArn":"p"},"responseElements":{"credentials":{"accessKeyId":"ASIAR","expiration":"Jul 10, 2023, 1:00:00 PM"},"accessKey":{"accessKeyId":"AKIAT"}}}"#,
        ),
        t(
            Format::K8sAudit,
            r#"{"auditID":"a1","stage":"ResponseComplete","verb":"create","stageTimestamp":"2024-05-01T10:00:00Z","user":{"username":"system:serviceaccount:ns:sa","extra":{"authentication.kubernetes.io/credential-id":["JTI=1"]}},"objectRef":{"resource":"serviceaccounts","subresource":"token","namespace":"ns","name":"sa"},"responseStatus":{"code":201},"requestObject":{"spec":{"expirationSeconds":600},"subjects":[{"kind":"ServiceAccount","name":"sa"}],"roleRef":{"kind":"ClusterRole","name":"r"}}}"#,
        ),
        t(
            Format::VaultAudit,
            r#"{"type":"response","time":"2024-05-01T10:00:00Z","auth":{"accessor":"acc","entity_id":"e","policies":["p"]},"request":{"id":"r1","path":"auth/token/create","operation":"update"},"response":{"auth":{"accessor":"child","entity_id":"e","token_policies":["p"],"token_ttl":60},"secret":{"lease_id":"l"}}}"#,
        ),
        t(
            Format::GithubAudit,
            r#"{"_document_id":"d1","action":"personal_access_token.access_granted","@timestamp":1714557600000,"org":"o","token_id":7,"user":"u","permissions":{"contents":"read"},"integration":"app","repositories":["o/r"]}"#,
        ),
        t(
            Format::OtelGenai,
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeSpans":[{"spans":[{"traceId":"t","spanId":"s","startTimeUnixNano":"1758026581000000000","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"execute_tool"}},{"key":"gen_ai.tool.name","value":{"stringValue":"x"}},{"key":"gen_ai.agent.name","value":{"stringValue":"a"}}]}]}]}]}"#,
        ),
        t(
            Format::EntraAudit,
            r#"{"Id":"i1","ActivityDisplayName":"Update application – Certificates and secrets management","ActivityDateTime":"2021-08-02T13:29:25Z","TenantId":"t","TargetResources":[{"id":"app","type":"Application","modifiedProperties":[{"displayName":"KeyDescription","oldValue":"[]","newValue":"[\"[KeyIdentifier=k,KeyType=Password]\"]"}]}]}"#,
        ),
    ]
}

/// Replaces the value at a random path of `value` with `with`.
fn mutate(value: &mut Value, mut choice: usize, with: Value) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[choice % keys.len()];
            choice /= keys.len().max(1);
            match map.get_mut(key) {
                Some(child)
                    if !choice.is_multiple_of(3) && (child.is_object() || child.is_array()) =>
                {
                    mutate(child, choice, with)
                }
                Some(child) => *child = with,
                None => {}
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let len = items.len();
            mutate(&mut items[choice % len], choice / len, with)
        }
        other => *other = with,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_real_records_keep_the_properties(
        which in 0usize..6,
        choices in prop::collection::vec(any::<usize>(), 1..4),
        replacements in prop::collection::vec(json(), 1..4),
    ) {
        let (format, mut record) = templates().swap_remove(which);
        prop_assert!(!run(format, record.to_string().as_bytes()).events.is_empty(), "{format:?} template maps");
        for (choice, with) in choices.into_iter().zip(replacements) {
            mutate(&mut record, choice, with);
        }
        let mut n = 0;
        plant_secrets(&mut record, &mut n);
        check(format, record.to_string().as_bytes())?;
    }
}
