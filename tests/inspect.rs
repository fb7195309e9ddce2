//! `nhi-drift inspect IDENTITY PATH... --as-of TIME`: every field of the identity view with
//! a value, from a replay of a small recorded history.

use std::process::Command;

use serde_json::{Value, json};

const EVENTS: &str = "tests/fixtures/inspect/events.jsonl";

fn inspect(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .arg("inspect")
        .args(args)
        .output()
        .expect("run inspect")
}

#[test]
fn every_field_of_the_identity_view() {
    let out = inspect(&[
        "agent-ledger",
        EVENTS,
        "--as-of",
        "2026-04-21T10:00:00Z",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut view: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let findings = view["open_findings"].take();
    let rules: Vec<&str> = findings
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap_or_default())
        .collect();
    // Offboarded with a key and two grants left: only the offboarding and credential
    // rules still judge it (contract §3), so the orphan and vendor findings resolved;
    // the privileged call used an active JIT token.
    assert_eq!(rules, ["NHI-OFF-002"], "{findings}");
    assert_eq!(
        view,
        json!({
            "as_of": "2026-04-21T10:00:00Z",
            "identity": "agent-ledger",
            "kind": "ai_agent",
            "tier": "privileged",
            "registered_at": "2026-04-01T09:00:00Z",
            "business_owner": {"principal": "ana@example.com", "since": "2026-04-01T09:00:00Z",
                               "departed_at": null},
            "technical_custodian": {"principal": "ben@example.com",
                                    "since": "2026-04-01T09:00:00Z",
                                    "departed_at": "2026-04-14T10:00:00Z"},
            "approved_at": "2026-04-01T09:05:00Z",
            "certified_at": "2026-04-01T09:05:00Z",
            "baseline": {"scopes": ["ledger:read", "ledger:write"], "tools": ["ledger.query"],
                         "set_at": "2026-04-01T09:05:00Z"},
            "offboarded_at": "2026-04-20T10:00:00Z",
            "last_activity_at": "2026-04-15T10:00:00Z",
            "grants": [
                {"scope": "ledger:admin", "granted_at": "2026-04-01T09:10:00Z",
                 "in_baseline": false, "last_exercised_at": null},
                {"scope": "ledger:read", "granted_at": "2026-04-01T09:10:00Z",
                 "in_baseline": true, "last_exercised_at": "2026-04-12T13:05:00Z"},
            ],
            "approved_not_granted": ["ledger:write"],
            "credentials": [
                {"credential": "jit-ledger-1", "kind": "jit_token", "status": "revoked",
                 "issued_at": "2026-04-12T13:00:00Z", "rotated_at": null,
                 "age_seconds": 8 * 86_400 + 21 * 3_600,
                 "expires": "2026-04-12T13:30:00Z", "revoked_at": "2026-04-12T13:12:00Z",
                 "last_used_at": "2026-04-12T13:05:00Z", "task": "FIN-7",
                 "task_completed_at": "2026-04-12T13:10:00Z"},
                {"credential": "key-ledger-1", "kind": "api_key", "status": "active",
                 "issued_at": "2026-04-01T09:15:00Z", "rotated_at": "2026-04-10T09:15:00Z",
                 "age_seconds": 11 * 86_400 + 45 * 60,
                 "expires": "2026-07-10T09:15:00Z", "revoked_at": null,
                 "last_used_at": "2026-04-15T10:00:00Z", "task": null,
                 "task_completed_at": null},
            ],
            "vendors": [
                {"vendor": "netsuite", "linked_at": "2026-04-02T09:00:00Z",
                 "offboarded_at": "2026-04-13T10:00:00Z"},
                {"vendor": "stripe", "linked_at": "2026-04-01T09:00:00Z", "offboarded_at": null},
            ],
            "open_findings": null,
        })
    );

    // The same view as a table.
    let out = inspect(&["agent-ledger", EVENTS, "--as-of", "2026-04-21T10:00:00Z"]);
    let table = String::from_utf8_lossy(&out.stdout);
    for text in [
        "agent-ledger",
        "DEPARTED 2026-04-14T10:00:00Z",
        "ledger:admin",
        "NO",
        "approved, not granted: ledger:write",
        "jit-ledger-1",
        "revoked",
        "OFFBOARDED",
        "NHI-OFF-002",
    ] {
        assert!(table.contains(text), "{text} in\n{table}");
    }

    // Earlier, the state is what it was then.
    let out = inspect(&[
        "agent-ledger",
        EVENTS,
        "--as-of",
        "2026-04-12T13:06:00Z",
        "--json",
    ]);
    let then: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(then["offboarded_at"], Value::Null);
    assert_eq!(then["credentials"][0]["status"], "active", "{then}");
    assert_eq!(then["vendors"][0]["offboarded_at"], Value::Null);

    let out = inspect(&["nobody", EVENTS]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nobody` is not in"));
}
