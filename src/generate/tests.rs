//! Tests of the generator: determinism, the contract's event shapes, size and seeding.

use super::output::push_time;
use super::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600;

fn run(identities: u32, days: u32, seed: u64) -> (GenerateSummary, String) {
    run_from(START, identities, days, seed)
}

fn run_from(start: i64, identities: u32, days: u32, seed: u64) -> (GenerateSummary, String) {
    let opts = GenerateOptions {
        identities,
        days,
        seed,
        start,
    };
    let mut out = Vec::new();
    let summary = generate(&opts, &mut out).expect("writing to a Vec cannot fail");
    (summary, String::from_utf8(out).expect("UTF-8 output"))
}

/// Fields CONTRACT.md §1 requires per type, besides the envelope.
fn required(ty: &str) -> &'static [&'static str] {
    match ty {
        "identity.registered" => &["identity", "kind"],
        "identity.owner_assigned" | "identity.offboarded" => &["identity"],
        "identity.approved" => &["identity", "approver", "scopes"],
        "identity.recertified" => &["identity", "reviewer"],
        "identity.scope_granted" | "identity.scope_revoked" => &["identity", "scope"],
        "principal.departed" => &["principal"],
        "vendor.offboarded" => &["vendor"],
        "credential.issued" => &["identity", "credential", "kind"],
        "credential.rotated" | "credential.revoked" | "credential.used" => {
            &["identity", "credential"]
        }
        "tool.called" => &["identity", "tool"],
        "task.completed" => &["identity", "task"],
        other => panic!("unknown event type {other}"),
    }
}

#[test]
fn same_options_give_identical_output() {
    let (a, out_a) = run(80, 20, 7);
    let (b, out_b) = run(80, 20, 7);
    assert_eq!(a, b);
    assert!(out_a == out_b, "two runs differ");
    assert!(
        run(80, 20, 8).1 != out_a,
        "another seed gives another stream"
    );
}

#[test]
fn lines_are_ordered_contract_events_with_unique_ids() {
    // Five days force the long-threshold violations onto legacy identities with pre-history;
    // a start off the minute checks that nothing lands before its day is written.
    let (summary, out) = run_from(START + 1_234, 300, 5, 3);
    let (mut ids, mut last, mut before_start) = (HashSet::new(), String::new(), 0);
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).expect("every line is JSON");
        let obj = v.as_object().expect("every line is an object");
        let text = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no {k}: {line}"))
        };
        assert!(ids.insert(text("id").to_string()), "duplicate id: {line}");
        for k in required(text("type")) {
            assert!(obj.contains_key(*k), "no {k}: {line}");
        }
        let time = text("time");
        assert!(
            time.len() == 20 && time.ends_with('Z'),
            "not RFC 3339 UTC: {time}"
        );
        assert!(time >= last.as_str(), "{time} comes after {last}");
        before_start += usize::from(time < "2026-01-01");
        last = time.to_string();
        for k in ["secret", "token", "password", "value"] {
            assert!(!obj.contains_key(k), "secret-named field: {line}");
        }
    }
    assert_eq!(ids.len() as u64, summary.events);
    assert!(
        before_start > 0,
        "legacy identities bring their pre-history"
    );
}

#[test]
fn size_scales_with_identities_and_days() {
    let (summary, out) = run(200, 20, 11);
    let per_identity_day = summary.events as f64 / (200.0 * 20.0);
    assert!(
        (13.0..21.0).contains(&per_identity_day),
        "{per_identity_day} events per identity-day"
    );
    assert_eq!(out.lines().count() as u64, summary.events);
}

#[test]
fn every_rule_is_seeded_whatever_the_period() {
    for days in [120, 30, 1] {
        let opts = GenerateOptions {
            identities: 300,
            days,
            seed: 5,
            start: START,
        };
        let summary = generate(&opts, &mut io::sink()).expect("a sink cannot fail");
        assert_eq!(summary.violations.len(), Rule::ALL.len());
        assert!(
            summary.violations.values().all(|&n| n >= 1),
            "{days} d: {:?}",
            summary.violations
        );
        let seeded: u64 = summary.violations.values().sum();
        assert!(
            (15..=30).contains(&seeded),
            "{seeded} of 300 seeded, want 5-10 %"
        );
    }
}

#[test]
fn window_violations_appear_only_where_seeded() {
    let (summary, out) = run(300, 30, 9);
    let mut approved: HashMap<String, Vec<Value>> = HashMap::new();
    let mut dead = HashSet::new();
    let (mut off_scope, mut after_revoke) = (HashSet::new(), HashSet::new());
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).expect("JSON");
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let scopes = v["scopes"].as_array().cloned().unwrap_or_default();
        match v["type"].as_str().unwrap_or_default() {
            "identity.approved" => _ = approved.insert(text("identity"), scopes),
            "credential.revoked" => _ = dead.insert(text("credential")),
            "credential.rotated" if v.get("new_credential").is_some() => {
                _ = dead.insert(text("credential"))
            }
            ty @ ("credential.used" | "tool.called") => {
                if dead.contains(&text("credential")) {
                    after_revoke.insert(text("identity"));
                }
                let baseline = approved.get(&text("identity"));
                if ty == "tool.called"
                    && !baseline.is_some_and(|b| scopes.iter().all(|s| b.contains(s)))
                {
                    off_scope.insert(text("identity"));
                }
            }
            _ => {}
        }
    }
    assert_eq!(off_scope.len() as u64, summary.violations["NHI-SCOPE-001"]);
    assert_eq!(after_revoke.len() as u64, summary.violations["NHI-OFF-001"]);
}

#[test]
fn empty_fleet_or_period_writes_nothing() {
    for (identities, days) in [(0, 30), (30, 0)] {
        let (summary, out) = run(identities, days, 1);
        assert_eq!((summary.events, out.as_str()), (0, ""));
    }
}

#[test]
fn timestamps_are_rfc3339_utc() {
    for (t, want) in [
        (0, "1970-01-01T00:00:00Z"),
        (START, "2026-01-01T00:00:00Z"),
        (1_709_210_096, "2024-02-29T12:34:56Z"),
        (-400 * DAY + 3_725, "1968-11-27T01:02:05Z"),
    ] {
        let mut s = String::new();
        push_time(&mut s, t);
        assert_eq!(s, want);
    }
}
