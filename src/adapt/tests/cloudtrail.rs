//! CloudTrail, from the `userIdentity` and per-service event reference of the CloudTrail
//! User Guide.

use serde_json::{Value, json};

use super::{adapt_with, config, events, lines, skipped, types};
use crate::adapt::{Format, SkipReason};

const ACCOUNT: &str = "123456789012";

fn iam_user(name: &str, key: &str) -> Value {
    json!({"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": ACCOUNT,
           "arn": format!("arn:aws:iam::{ACCOUNT}:user/{name}"), "userName": name,
           "accessKeyId": key})
}

fn record(name: &str, source: &str, user: Value, params: Value, response: Value) -> String {
    json!({"eventVersion": "1.08", "userIdentity": user, "eventTime": "2023-07-10T12:00:00Z",
           "eventSource": format!("{source}.amazonaws.com"), "eventName": name,
           "awsRegion": "us-east-1", "sourceIPAddress": "10.1.2.3", "userAgent": "aws-cli/2",
           "requestParameters": params, "responseElements": response,
           "eventID": format!("id-{name}"), "recipientAccountId": ACCOUNT})
    .to_string()
}

fn user_key(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{name}")
}

#[test]
fn create_access_key_is_issued_to_the_target_user_not_the_caller() {
    let line = record(
        "CreateAccessKey",
        "iam",
        iam_user("admin", "AKIAADMIN"),
        json!({"userName": "deployer"}),
        json!({"accessKey": {"accessKeyId": "AKIANEW", "status": "Active", "userName": "deployer",
               "createDate": "Jul 10, 2023 12:00:00 PM"}}),
    );
    let out = events(Format::Cloudtrail, &line);
    assert_eq!(types(&out), ["credential.issued", "tool.called"]);
    assert_eq!(out[0]["identity"], user_key("deployer"));
    assert_eq!(out[0]["credential"], "AKIANEW");
    assert_eq!(out[0]["kind"], "api_key");
    assert_eq!(out[0]["id"], "cloudtrail:id-CreateAccessKey");
    assert_eq!(out[1]["identity"], user_key("admin"));
    assert_eq!(out[1]["tool"], "iam:CreateAccessKey");
    assert_eq!(out[1]["sensitivity"], "restricted");
    assert_eq!(out[1]["credential"], "AKIAADMIN");
    assert_eq!(out[1]["id"], "cloudtrail:id-CreateAccessKey:1");
}

#[test]
fn deleting_and_deactivating_keys_revoke_them() {
    let delete = record(
        "DeleteAccessKey",
        "iam",
        iam_user("admin", "AKIAADMIN"),
        json!({"userName": "deployer", "accessKeyId": "AKIAOLD"}),
        Value::Null,
    );
    let out = events(Format::Cloudtrail, &delete);
    assert_eq!(types(&out), ["credential.revoked", "credential.used"]);
    assert_eq!(out[0]["identity"], user_key("deployer"));
    assert_eq!(out[0]["credential"], "AKIAOLD");
    let inactive = record(
        "UpdateAccessKey",
        "iam",
        iam_user("deployer", "AKIAOTHER"),
        json!({"accessKeyId": "AKIAOLD", "status": "Inactive"}),
        Value::Null,
    );
    let out = events(Format::Cloudtrail, &inactive);
    assert_eq!(out[0]["type"], "credential.revoked");
    assert_eq!(
        out[0]["identity"],
        user_key("deployer"),
        "no userName: the caller"
    );
    let active = inactive.replace("Inactive", "Active");
    assert_eq!(types(&events(Format::Cloudtrail, &active)), ["tool.called"]);
}

#[test]
fn users_and_roles_register_with_owner_tags_and_trusted_vendors() {
    let create_user = record(
        "CreateUser",
        "iam",
        iam_user("admin", "AKIAADMIN"),
        json!({"userName": "ci-bot", "path": "/bots/",
               "tags": [{"key": "owner", "value": "alice@example.com"},
                        {"key": "custodian", "value": "ops@example.com"}]}),
        json!({"user": {"userName": "ci-bot", "arn": format!("arn:aws:iam::{ACCOUNT}:user/bots/ci-bot")}}),
    );
    let out = events(Format::Cloudtrail, &create_user);
    assert_eq!(
        types(&out),
        [
            "identity.registered",
            "identity.owner_assigned",
            "credential.used"
        ]
    );
    let registered = &out[0];
    assert_eq!(registered["identity"], user_key("ci-bot"), "path dropped");
    assert_eq!(registered["kind"], "service_account");
    assert_eq!(out[1]["business_owner"], "alice@example.com");
    assert_eq!(out[1]["technical_custodian"], "ops@example.com");

    let trust = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999988887777:root"}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com")}, "Action": "sts:AssumeRoleWithWebIdentity"},
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let create_role = record(
        "CreateRole",
        "iam",
        iam_user("admin", "AKIAADMIN"),
        json!({"roleName": "deployer", "path": "/", "assumeRolePolicyDocument": trust.to_string()}),
        Value::Null,
    );
    let out = events(Format::Cloudtrail, &create_role);
    assert_eq!(out[0]["type"], "identity.registered");
    assert_eq!(
        out[0]["identity"],
        format!("arn:aws:iam::{ACCOUNT}:role/deployer")
    );
    assert_eq!(out[0]["kind"], "workload");
    assert_eq!(
        out[0]["vendors"],
        json!([
            "aws-account:999988887777",
            "oidc:token.actions.githubusercontent.com"
        ])
    );
    let update = record(
        "UpdateAssumeRolePolicy",
        "iam",
        iam_user("admin", "AKIAADMIN"),
        json!({"roleName": "deployer", "policyDocument": trust.to_string()}),
        Value::Null,
    );
    let out = events(Format::Cloudtrail, &update);
    assert_eq!(
        types(&out),
        [
            "identity.vendor_linked",
            "identity.vendor_linked",
            "tool.called"
        ]
    );
}

#[test]
fn managed_and_inline_policies_are_grants() {
    let cases = [
        (
            "AttachRolePolicy",
            json!({"roleName": "r", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
            "identity.scope_granted",
            "arn:aws:iam::aws:policy/AdministratorAccess",
        ),
        (
            "DetachUserPolicy",
            json!({"userName": "u", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
            "identity.scope_revoked",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
        ),
        (
            "PutUserPolicy",
            json!({"userName": "u", "policyName": "inline-s3", "policyDocument": "{}"}),
            "identity.scope_granted",
            "inline:inline-s3",
        ),
        (
            "DeleteRolePolicy",
            json!({"roleName": "r", "policyName": "inline-s3"}),
            "identity.scope_revoked",
            "inline:inline-s3",
        ),
    ];
    for (name, params, ty, scope) in cases {
        let line = record(
            name,
            "iam",
            iam_user("admin", "AKIAADMIN"),
            params,
            Value::Null,
        );
        let out = events(Format::Cloudtrail, &line);
        assert_eq!(out[0]["type"], ty, "{name}");
        assert_eq!(out[0]["scope"], scope, "{name}");
        let target = if name.contains("Role") {
            "role/r"
        } else {
            "user/u"
        };
        assert_eq!(
            out[0]["identity"],
            format!("arn:aws:iam::{ACCOUNT}:{target}")
        );
    }
}

#[test]
fn assume_role_issues_a_short_lived_credential_with_its_real_expiry_and_no_token() {
    let line = record(
        "AssumeRole",
        "sts",
        iam_user("ci-bot", "AKIABOT"),
        json!({"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/deploy/deployer"), "roleSessionName": "s", "durationSeconds": 900}),
        json!({"credentials": {"accessKeyId": "ASIASESSION", "sessionToken": "SECRET-SESSION-TOKEN",
                               "expiration": "Jul 10, 2023, 12:15:00 PM"},
               "assumedRoleUser": {"assumedRoleId": "AROA:s", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/deployer/s")}}),
    );
    let out = events(Format::Cloudtrail, &line);
    assert_eq!(types(&out), ["credential.issued", "credential.used"]);
    assert_eq!(
        out[0]["identity"],
        format!("arn:aws:iam::{ACCOUNT}:role/deployer")
    );
    assert_eq!(out[0]["credential"], "ASIASESSION");
    assert_eq!(out[0]["kind"], "oauth_token");
    assert_eq!(out[0]["expires"], "2023-07-10T12:15:00Z");
    assert!(
        !out.iter()
            .any(|e| e.to_string().contains("SECRET-SESSION-TOKEN"))
    );
    // Issued by a service on the role's behalf (an instance profile): still issued.
    let service = json!({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"});
    let line = record(
        "AssumeRole",
        "sts",
        service,
        json!({"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/app")}),
        json!({"credentials": {"accessKeyId": "ASIAAPP", "expiration": "2023-07-10T18:00:00Z"}}),
    );
    let out = events(Format::Cloudtrail, &line);
    assert_eq!(types(&out), ["credential.issued"]);
    // GetSessionToken and GetFederationToken: the caller's own session.
    let line = record(
        "GetSessionToken",
        "sts",
        iam_user("ci-bot", "AKIABOT"),
        json!({}),
        json!({"credentials": {"accessKeyId": "ASIAOWN", "expiration": "2023-07-11T00:00:00Z"}}),
    );
    let out = events(Format::Cloudtrail, &line);
    assert_eq!(out[0]["identity"], user_key("ci-bot"));
}

#[test]
fn login_profiles_are_passwords_and_console_logins_use_them() {
    let create = record(
        "CreateLoginProfile",
        "iam",
        iam_user("admin", "AKIAADMIN"),
        json!({"userName": "svc", "passwordResetRequired": false}),
        Value::Null,
    );
    let out = events(Format::Cloudtrail, &create);
    assert_eq!(out[0]["type"], "credential.issued");
    assert_eq!(out[0]["kind"], "password");
    let credential = format!("login-profile:{}", user_key("svc"));
    assert_eq!(out[0]["credential"], credential.as_str());
    let mut user = iam_user("svc", "");
    user.as_object_mut().map(|u| u.remove("accessKeyId"));
    let login = record(
        "ConsoleLogin",
        "signin",
        user.clone(),
        Value::Null,
        json!({"ConsoleLogin": "Success"}),
    );
    let out = events(Format::Cloudtrail, &login);
    assert_eq!(types(&out), ["credential.used"]);
    assert_eq!(out[0]["credential"], credential.as_str());
    let failed = record(
        "ConsoleLogin",
        "signin",
        user,
        Value::Null,
        json!({"ConsoleLogin": "Failure"}),
    );
    assert_eq!(
        skipped(Format::Cloudtrail, &failed),
        SkipReason::FailedRequest
    );
}

#[test]
fn secret_and_password_reads_are_restricted_tool_calls_and_denials_still_count() {
    let read = record(
        "GetSecretValue",
        "secretsmanager",
        iam_user("app", "AKIAAPP"),
        json!({"secretId": "prod/db"}),
        Value::Null,
    );
    let out = events(Format::Cloudtrail, &read);
    assert_eq!(out[0]["tool"], "secretsmanager:GetSecretValue");
    assert_eq!(out[0]["sensitivity"], "restricted");
    assert_eq!(out[0]["outcome"], "success");
    let mut denied: Value = serde_json::from_str(&record(
        "GetPasswordData",
        "ec2",
        iam_user("app", "AKIAAPP"),
        json!({"instanceId": "i-1"}),
        Value::Null,
    ))
    .expect("json");
    denied["errorCode"] = json!("Client.UnauthorizedOperation");
    let out = events(Format::Cloudtrail, &denied.to_string());
    assert_eq!(out[0]["outcome"], "denied");
    // Parameter reads are restricted only when they decrypt.
    let plain = record(
        "GetParameter",
        "ssm",
        iam_user("app", "AKIAAPP"),
        json!({"name": "p"}),
        Value::Null,
    );
    assert_eq!(
        types(&events(Format::Cloudtrail, &plain)),
        ["credential.used"]
    );
    let decrypt = record(
        "GetParameter",
        "ssm",
        iam_user("app", "AKIAAPP"),
        json!({"name": "p", "withDecryption": true}),
        Value::Null,
    );
    assert_eq!(
        events(Format::Cloudtrail, &decrypt)[0]["sensitivity"],
        "restricted"
    );
}

#[test]
fn role_sessions_act_as_their_role_and_user_sessions_expire() {
    let session = json!({"type": "AssumedRole", "principalId": "AROA:i-1", "accountId": ACCOUNT,
        "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app/i-1"), "accessKeyId": "ASIAROLE",
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{ACCOUNT}:role/app")},
                           "attributes": {"creationDate": "2023-07-10T11:00:00Z"}}});
    let line = record("ListBuckets", "s3", session, Value::Null, Value::Null);
    let out = events(Format::Cloudtrail, &line);
    assert_eq!(types(&out), ["credential.used"]);
    assert_eq!(
        out[0]["identity"],
        format!("arn:aws:iam::{ACCOUNT}:role/app")
    );
    assert_eq!(out[0]["source_ip"], "10.1.2.3");
    let mut user = iam_user("svc", "ASIACONSOLE");
    user["sessionContext"] = json!({"attributes": {"creationDate": "2023-07-10T11:00:00Z"}});
    let line = record("DescribeInstances", "ec2", user, Value::Null, Value::Null);
    let out = events(Format::Cloudtrail, &line);
    assert_eq!(types(&out), ["credential.issued", "credential.used"]);
    assert_eq!(out[0]["id"], "cloudtrail:sts-issue:ASIACONSOLE");
    assert_eq!(out[0]["time"], "2023-07-10T11:00:00Z");
    assert_eq!(out[0]["expires"], "2023-07-10T23:00:00Z");
}

#[test]
fn deleted_users_and_roles_are_offboarded() {
    for (name, params, key) in [
        ("DeleteUser", json!({"userName": "svc"}), user_key("svc")),
        (
            "DeleteRole",
            json!({"roleName": "app"}),
            format!("arn:aws:iam::{ACCOUNT}:role/app"),
        ),
    ] {
        let out = events(
            Format::Cloudtrail,
            &record(
                name,
                "iam",
                iam_user("admin", "AKIAADMIN"),
                params,
                Value::Null,
            ),
        );
        assert_eq!(out[0]["type"], "identity.offboarded");
        assert_eq!(out[0]["identity"], key.as_str());
    }
}

#[test]
fn skips_have_bounded_reasons() {
    let forwarded = {
        let mut user = iam_user("svc", "AKIASVC");
        user["invokedBy"] = json!("cloudformation.amazonaws.com");
        record("CreateBucket", "s3", user, Value::Null, Value::Null)
    };
    assert_eq!(
        skipped(Format::Cloudtrail, &forwarded),
        SkipReason::ForwardedServiceCall
    );
    let service_linked = json!({"type": "AssumedRole", "accessKeyId": "ASIAX", "sessionContext":
        {"sessionIssuer": {"arn": format!("arn:aws:iam::{ACCOUNT}:role/aws-service-role/inspector2.amazonaws.com/AWSServiceRoleForAmazonInspector2")}}});
    let line = record(
        "ListFindings",
        "inspector2",
        service_linked,
        Value::Null,
        Value::Null,
    );
    assert_eq!(skipped(Format::Cloudtrail, &line), SkipReason::NotNhi);
    let root = json!({"type": "Root", "arn": format!("arn:aws:iam::{ACCOUNT}:root")});
    assert_eq!(
        skipped(
            Format::Cloudtrail,
            &record("ListUsers", "iam", root, Value::Null, Value::Null)
        ),
        SkipReason::NotNhi
    );
    let mut failed: Value = serde_json::from_str(&record(
        "CreateUser",
        "iam",
        iam_user("a", "AKIAA"),
        json!({"userName": "x"}),
        Value::Null,
    ))
    .expect("json");
    failed["errorCode"] = json!("AccessDenied");
    assert_eq!(
        skipped(Format::Cloudtrail, &failed.to_string()),
        SkipReason::FailedRequest
    );
    let no_time = r#"{"eventID": "e", "eventName": "ListUsers"}"#;
    assert_eq!(
        skipped(Format::Cloudtrail, no_time),
        SkipReason::MissingTime
    );
    assert_eq!(skipped(Format::Cloudtrail, "[1]"), SkipReason::ParseError);
    let no_key = {
        let mut user = iam_user("svc", "");
        user.as_object_mut().map(|u| u.remove("accessKeyId"));
        record("ListUsers", "iam", user, Value::Null, Value::Null)
    };
    assert_eq!(
        skipped(Format::Cloudtrail, &no_key),
        SkipReason::UnlinkableCredential
    );
}

#[test]
fn humans_and_environments_come_from_config() {
    let mut config = config();
    config.humans = vec!["arn:aws:iam::*:user/alice".into()];
    config.environments = vec![crate::adapt::classify::CidrEnvironment {
        cidr: "10.0.0.0/8".into(),
        environment: "prod".into(),
    }];
    let human = record(
        "ListUsers",
        "iam",
        iam_user("alice", "AKIAALICE"),
        Value::Null,
        Value::Null,
    );
    let adapted = adapt_with(Format::Cloudtrail, &human, &config);
    assert_eq!(adapted.skipped[0].reason, SkipReason::NotNhi);
    let bot = record(
        "ListUsers",
        "iam",
        iam_user("bot", "AKIABOT"),
        Value::Null,
        Value::Null,
    );
    let out = lines(&adapt_with(Format::Cloudtrail, &bot, &config));
    assert_eq!(out[0]["environment"], "prod");
}

#[test]
fn sessions_of_a_deleted_role_end_with_it() {
    let issue = record(
        "AssumeRole",
        "sts",
        iam_user("ci", "AKIACI"),
        json!({"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/app")}),
        json!({"credentials": {"accessKeyId": "ASIAAPP", "expiration": "2023-07-10T18:00:00Z"}}),
    );
    let delete = record(
        "DeleteRole",
        "iam",
        iam_user("ci", "AKIACI"),
        json!({"roleName": "app"}),
        Value::Null,
    )
    .replace("12:00:00Z", "12:30:00Z");
    let config = config();
    let mut adapted = adapt_with(Format::Cloudtrail, &format!("{issue}\n{delete}\n"), &config);
    crate::adapt::sort_events(&mut adapted.events);
    crate::adapt::cloudtrail::end_deleted_role_sessions(
        &mut adapted.events,
        &crate::event::Decoder::new(1 << 20),
    );
    let out = lines(&adapted);
    let revoked: Vec<&Value> = out
        .iter()
        .filter(|e| e["type"] == "credential.revoked")
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["credential"], "ASIAAPP");
    assert_eq!(revoked[0]["time"], "2023-07-10T12:30:00Z");
}

#[test]
fn a_record_without_an_event_id_is_named_by_its_digest() {
    let mut line: Value = serde_json::from_str(&record(
        "ListBuckets",
        "s3",
        iam_user("app", "AKIAAPP"),
        Value::Null,
        Value::Null,
    ))
    .expect("json");
    line.as_object_mut().map(|r| r.remove("eventID"));
    let first = events(Format::Cloudtrail, &line.to_string());
    let id = first[0]["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("cloudtrail:h"), "{id}");
    assert_eq!(
        events(Format::Cloudtrail, &line.to_string())[0]["id"],
        id.as_str()
    );
}
