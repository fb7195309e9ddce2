//! The `/v1` API of a running service fed the scenario (contract §9): the identity view
//! field by field, findings with paging and filters, decisions, access off loopback, and
//! the 4xx answers; and `nhi-drift inspect` agreeing with it, from the service and from
//! a replay of the same files.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};
use support::{Broker, RunSettings, Scratch, Service, serve_scenario};

fn micros(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .expect("RFC 3339")
        .timestamp_micros()
}

fn nhi_drift(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .args(args)
        .output()
        .expect("run nhi-drift")
}

/// Every page of `/v1/findings?{query}`, followed by `next_cursor`, at `limit` a page.
fn all_pages(service: &Service, query: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    let mut total = None;
    for _ in 0..1000 {
        let mut path = format!("/v1/findings?limit={limit}");
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = service.api("GET", &path, "");
        assert_eq!(status, 200, "{path}: {page}");
        let findings = page["findings"].as_array().expect("findings").clone();
        assert!(
            findings.len() <= limit,
            "{path}: a page holds at most `limit`"
        );
        let this_total = page["total"].as_u64().expect("total") as usize;
        assert_eq!(
            *total.get_or_insert(this_total),
            this_total,
            "total is stable"
        );
        found.extend(findings);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (found, this_total),
        }
    }
    panic!("paging never ended");
}

#[test]
fn identity_view_findings_and_decisions_against_the_scenario() {
    let scratch = Scratch::new("api");
    let (broker, service) = serve_scenario(&scratch);

    // The identity view, every field.
    let (status, view) = service.api("GET", "/v1/identities/api-crm-connector", "");
    assert_eq!(status, 200, "{view}");
    let as_of = view["as_of"].as_str().expect("as_of").to_owned();
    let age = (micros(&as_of) - micros("2026-03-26T09:30:00Z")) / 1_000_000;
    assert!(
        micros(&as_of) > micros("2026-05-05T02:00:10Z"),
        "the state stands after the last scenario event: {as_of}"
    );
    let mut findings = view["open_findings"].as_array().expect("findings").clone();
    assert_eq!(findings.len(), 1, "{view}");
    let finding = findings.remove(0);
    let mut rest = view.clone();
    rest["open_findings"] = json!([]);
    assert_eq!(
        rest,
        json!({
            "as_of": as_of,
            "identity": "api-crm-connector",
            "kind": "api_client",
            "tier": "tool_executing",
            "registered_at": "2026-01-06T13:00:00Z",
            "business_owner": {"principal": "lena.fischer@example.com",
                               "since": "2026-03-12T09:00:00Z", "departed_at": null},
            "technical_custodian": {"principal": "raj.patel@example.com",
                                    "since": "2026-01-06T13:00:00Z", "departed_at": null},
            "approved_at": "2026-01-06T13:05:00Z",
            "certified_at": "2026-03-30T10:12:00Z",
            "baseline": {"scopes": ["crm:contacts.read", "tickets:read"], "tools": null,
                         "set_at": "2026-01-06T13:05:00Z"},
            "offboarded_at": null,
            "last_activity_at": "2026-05-04T12:00:00Z",
            "grants": [
                {"scope": "crm:contacts.read", "granted_at": "2026-01-06T13:10:00Z",
                 "in_baseline": true, "last_exercised_at": "2026-05-04T12:00:00Z"},
                {"scope": "tickets:read", "granted_at": "2026-01-06T13:10:00Z",
                 "in_baseline": true, "last_exercised_at": "2026-03-11T12:02:00Z"},
            ],
            "approved_not_granted": [],
            "credentials": [
                {"credential": "cs-crm-8e21", "kind": "client_secret", "status": "active",
                 "issued_at": "2026-03-26T09:30:00Z", "rotated_at": null, "age_seconds": age,
                 "expires": null, "revoked_at": null, "last_used_at": "2026-05-04T12:00:00Z",
                 "task": null, "task_completed_at": null},
            ],
            "vendors": [
                {"vendor": "salesforce", "linked_at": "2026-01-06T13:00:00Z", "offboarded_at": null},
                {"vendor": "zendesk", "linked_at": "2026-01-06T13:00:00Z",
                 "offboarded_at": "2026-03-20T16:00:00Z"},
            ],
            "open_findings": [],
        })
    );
    assert_eq!(finding["rule_id"], "NHI-ORPH-002");
    assert_eq!(finding["vendor"], "zendesk");
    assert_eq!(finding["status"], "open");
    assert_eq!(finding["opened_at"], "2026-03-20T16:00:00Z");
    assert!(
        finding["summary"]
            .as_str()
            .is_some_and(|s| s.contains("zendesk"))
    );
    assert!(finding["evidence"].is_object(), "{finding}");

    // A departed custodian, not replaced, is named in the view.
    let (_, hr) = service.api("GET", "/v1/identities/agent-hr-onboarding", "");
    assert_eq!(
        hr["technical_custodian"],
        json!({"principal": "tom.okafor@example.com", "since": "2026-01-13T09:00:00Z",
               "departed_at": "2026-03-06T17:00:00Z"})
    );
    assert!(
        hr["open_findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|a| a["rule_id"] == "NHI-ORPH-001")),
        "{hr}"
    );

    // An identity percent-encoded in the path, and an unknown one.
    let (status, same) = service.api("GET", "/v1/identities/api%2Dcrm%2Dconnector", "");
    assert_eq!((status, &same), (200, &view));
    let (status, unknown) = service.api("GET", "/v1/identities/nobody-at-all", "");
    assert_eq!(status, 404);
    assert!(
        unknown["error"]
            .as_str()
            .is_some_and(|e| e.contains("nobody-at-all")),
        "{unknown}"
    );
    // One instance reads every partition: the identity would be its own.
    let p = nhi_drift::ask::placement::partition_of("nobody-at-all", 3);
    assert!(
        unknown["error"].as_str().is_some_and(|e| e
            .contains(&format!("partition {p} of 3 of the input topics"))
            && e.contains("this instance's")
            && e.contains("reads partitions 0, 1, 2")),
        "{unknown}"
    );

    // Findings: every page, against the alerts the service emitted (latest status per
    // alert id: a resolved alert replaces the open one).
    let mut emitted: BTreeMap<String, Value> = BTreeMap::new();
    for alert in broker.values("nhi.alerts") {
        emitted.insert(alert["alert_id"].as_str().expect("id").to_owned(), alert);
    }
    assert!(emitted.len() > 10, "the scenario fires alerts");
    let (listed, total) = all_pages(&service, "", 7);
    assert_eq!(total, emitted.len());
    let listed_ids: BTreeMap<String, Value> = listed
        .iter()
        .map(|f| (f["alert_id"].as_str().expect("id").to_owned(), f.clone()))
        .collect();
    assert_eq!(listed_ids.len(), listed.len(), "no finding on two pages");
    assert_eq!(listed_ids, emitted, "every finding as last emitted");
    let resolved = emitted
        .values()
        .filter(|a| a["status"] == "resolved")
        .count();
    assert!(resolved > 0, "the scenario resolves findings");
    for (query, keep) in [
        (
            "status=resolved",
            &(|a: &Value| a["status"] == "resolved") as &dyn Fn(&Value) -> bool,
        ),
        ("status=open", &|a: &Value| a["status"] == "open"),
        ("rule=NHI-ORPH-001", &|a: &Value| {
            a["rule_id"] == "NHI-ORPH-001"
        }),
        ("severity=high", &|a: &Value| a["severity"] == "high"),
        ("identity=agent-hr-onboarding", &|a: &Value| {
            a["identity"] == "agent-hr-onboarding"
        }),
        (
            "identity=agent-hr-onboarding&status=open&severity=high",
            &|a: &Value| {
                a["identity"] == "agent-hr-onboarding"
                    && a["status"] == "open"
                    && a["severity"] == "high"
            },
        ),
    ] {
        let want: Vec<&String> = emitted
            .iter()
            .filter(|(_, a)| keep(a))
            .map(|(k, _)| k)
            .collect();
        let (got, total) = all_pages(&service, query, 3);
        let mut got: Vec<String> = got
            .iter()
            .map(|f| f["alert_id"].as_str().expect("id").to_owned())
            .collect();
        got.sort();
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "{query}");
        assert_eq!(total, want.len(), "{query}");
        assert!(
            !want.is_empty(),
            "{query} matches something in the scenario"
        );
    }
    for bad in [
        "rule=NHI-NOPE-001",
        "status=maybe",
        "severity=urgent",
        "limit=0",
        "limit=100000",
        "limit=ten",
        "cursor=abc",
        "colour=red",
        "identity=",
        "identity=%zz",
    ] {
        let (status, body) = service.api("GET", &format!("/v1/findings?{bad}"), "");
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}"
        );
    }

    // Decisions on the scenario's state.
    let (status, d) = service.api(
        "POST",
        "/v1/decide",
        r#"{"identity":"agent-k8s-operator","tool":"k8s.delete_pod","scopes":["k8s:pods.delete"]}"#,
    );
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["decision"], "deny", "{d}");
    assert_eq!(d["as_of"], as_of.as_str());
    assert!(
        d["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["rule_id"] == "NHI-PRIV-001")),
        "{d}"
    );
    let (_, d) = service.api(
        "POST",
        "/v1/decide",
        r#"{"identity":"agent-k8s-operator","tool":"k8s.delete_pod","scopes":["k8s:pods.delete"],"approval":"CHG-1"}"#,
    );
    assert_eq!(d["decision"], "allow", "an approval excuses the call: {d}");
    assert_eq!(d["reasons"], json!([]));
    let (_, d) = service.api(
        "POST",
        "/v1/decide",
        r#"{"identity":"api-crm-connector","tool":"salesforce.query","credential":"cs-crm-8e21","scopes":["crm:contacts.read"]}"#,
    );
    assert_eq!(d["decision"], "deny", "{d}");
    assert_eq!(d["reasons"][0]["rule_id"], "NHI-ORPH-002", "{d}");
    assert_eq!(d["reasons"][0]["kind"], "state", "{d}");
    let (status, d) = service.api(
        "POST",
        "/v1/decide",
        r#"{"identity":"nobody-at-all","tool":"t"}"#,
    );
    assert_eq!(status, 404, "an unknown identity is not an allow: {d}");
    // A decision changed nothing: the same view, no new alert.
    let (_, again) = service.api("GET", "/v1/identities/api-crm-connector", "");
    assert_eq!(again, view);
    assert_eq!(broker.values("nhi.alerts").len(), emitted.len() + resolved);

    // Bad requests.
    for (body, what) in [
        (r#"{"identity": "#, "truncated JSON"),
        ("not json", "not JSON"),
        (r#"["identity"]"#, "not an object"),
        (
            r#"{"identity":"api-crm-connector","tool":"t","scope":["x"]}"#,
            "unknown field",
        ),
        (r#"{"tool":"t"}"#, "no identity"),
        (
            r#"{"identity":"api-crm-connector"}"#,
            "neither tool nor credential",
        ),
        (
            r#"{"identity":"api-crm-connector","tool":"t","sensitivity":"secret"}"#,
            "bad sensitivity",
        ),
        (
            r#"{"identity":"api-crm-connector","credential":"c","scopes":["x"]}"#,
            "scopes without tool",
        ),
    ] {
        let (status, answer) = service.api("POST", "/v1/decide", body);
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}"
        );
    }
    let huge = format!(
        r#"{{"identity":"api-crm-connector","tool":"t","task":"{}"}}"#,
        "x".repeat(70_000)
    );
    let (status, answer) = service.api("POST", "/v1/decide", &huge);
    assert_eq!(status, 413, "{answer}");
    let (status, _) = service.api("GET", "/v1/decide", "");
    assert_eq!(status, 405);
    let (status, _) = service.api("POST", "/v1/findings", "{}");
    assert_eq!(status, 405);
    let (status, _) = service.api("GET", "/v1/nothing", "");
    assert_eq!(status, 404);

    // `inspect` from the service, and from a replay of the same files up to the same
    // moment: the same view.
    let url = format!("http://127.0.0.1:{}", service.port);
    let out = nhi_drift(&["inspect", "api-crm-connector", "--url", &url, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_service: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(from_service, view);
    let fixture = scratch.0.join("scenario.jsonl");
    let fixture = fixture.to_str().expect("path");
    for identity in [
        "api-crm-connector",
        "agent-hr-onboarding",
        "agent-k8s-operator",
    ] {
        let out = nhi_drift(&["inspect", identity, fixture, "--as-of", &as_of, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let from_files: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let (_, live) = service.api("GET", &format!("/v1/identities/{identity}"), "");
        assert_eq!(from_files, live, "{identity}: replay and service agree");
    }
    let out = nhi_drift(&["inspect", "api-crm-connector", "--url", &url]);
    let table = String::from_utf8_lossy(&out.stdout);
    for text in [
        "api-crm-connector",
        "cs-crm-8e21",
        "zendesk",
        "OFFBOARDED",
        "NHI-ORPH-002",
    ] {
        assert!(table.contains(text), "{text} in\n{table}");
    }
    let out = nhi_drift(&["inspect", "nobody-at-all", "--url", &url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    service.terminate();
}

#[test]
fn v1_needs_the_bearer_token_off_loopback_and_metrics_stay_open() {
    let scratch = Scratch::new("api-token");
    let broker = Broker::start(&["tok"]);
    let bootstrap = broker.bootstrap();
    let mut run = RunSettings::in_dir(&bootstrap, &scratch.0, "tok", "1s");
    run.http_host = "0.0.0.0";
    run.env = vec![("NHI_DRIFT_API__TOKEN", "correct-horse-battery")];
    let mut service = Service::start(&run);
    service.wait_ready();
    let get = |headers: &[(&str, &str)], path: &str| {
        service
            .request("GET", path, headers, b"")
            .map(|(status, head, body)| (status, head.to_lowercase(), body))
            .expect("an answer")
    };
    let (status, head, body) = get(&[], "/v1/findings");
    assert_eq!(status, 401, "{body}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert!(body.contains("bearer token"), "{body}");
    for wrong in [
        "Bearer correct-horse-batter",
        "Bearer correct-horse-battery!",
        "Basic x",
        "Bearer ",
    ] {
        let (status, _, body) = get(&[("Authorization", wrong)], "/v1/findings");
        assert_eq!(status, 401, "{wrong}: {body}");
    }
    let (status, _, body) = get(
        &[("Authorization", "Bearer correct-horse-battery")],
        "/v1/findings",
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = get(
        &[("Authorization", "Bearer correct-horse-battery")],
        "/v1/identities/x",
    );
    assert_eq!(
        status, 503,
        "nothing evaluated yet: no state to answer from"
    );
    let (status, _, body) = get(&[], "/v1/identities/x");
    assert_eq!(status, 401, "{body}");
    for open in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(get(&[], open).0, 200, "{open} needs no token");
    }
    let url = format!("http://127.0.0.1:{}", service.port);
    let out = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .args(["inspect", "x", "--url", &url])
        .output()
        .expect("inspect");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "without the token"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .args(["inspect", "x", "--url", &url])
        .env("NHI_DRIFT_API__TOKEN", "correct-horse-battery")
        .output()
        .expect("inspect");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("503"),
        "with the token"
    );
    assert!(
        !service.log_text().contains("correct-horse-battery"),
        "the token is never logged"
    );
    service.terminate();
}
