//! End-to-end golden test: the bundled multi-identity scenario replayed through the
//! binary; every alert field except `detected_at` is compared with the expected file.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites it (review the diff).

use std::process::Command;

use serde_json::Value;

const SCENARIO: &str = "examples/scenario.jsonl";
const EXPECTED: &str = "tests/golden/scenario.alerts.jsonl";

fn replay(extra: &[&str]) -> (Vec<Value>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .args(["replay", SCENARIO])
        .args(extra)
        .output()
        .expect("run nhi-drift");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "replay failed: {stderr}");
    let alerts = String::from_utf8(output.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert is JSON"))
        .collect();
    (alerts, stderr)
}

fn without_detected_at(alerts: &[Value]) -> Vec<Value> {
    alerts
        .iter()
        .map(|a| {
            let mut a = a.clone();
            if let Some(map) = a.as_object_mut() {
                map.remove("detected_at");
            }
            a
        })
        .collect()
}

#[test]
fn scenario_matches_the_golden_alerts() {
    let (alerts, stderr) = replay(&[]);
    let actual = without_detected_at(&alerts);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text: String = actual.iter().map(|a| format!("{a}\n")).collect();
        std::fs::create_dir_all("tests/golden").expect("mkdir");
        std::fs::write(EXPECTED, text).expect("write golden");
    }
    let expected: Vec<Value> = std::fs::read_to_string(EXPECTED)
        .expect("golden file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("golden line"))
        .collect();
    assert_eq!(
        actual.len(),
        expected.len(),
        "alert count differs; summary:\n{stderr}"
    );
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "alert {i} differs");
    }
    let rules: std::collections::BTreeSet<&str> = alerts
        .iter()
        .filter_map(|a| a["rule_id"].as_str())
        .collect();
    assert!(
        rules.len() >= 10,
        "the scenario should show many rules, got {rules:?}"
    );
    assert!(
        alerts.iter().any(|a| a["status"] == "resolved"),
        "a finding should resolve"
    );
}

#[test]
fn replaying_twice_gives_identical_alert_ids() {
    let ids = |alerts: Vec<Value>| -> Vec<String> {
        alerts
            .iter()
            .map(|a| a["alert_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let (first, _) = replay(&[]);
    let (second, _) = replay(&[]);
    assert!(!first.is_empty());
    assert_eq!(ids(first), ids(second));
}

#[test]
fn ocsf_output_is_a_detection_finding_with_the_same_ids() {
    let (json, _) = replay(&[]);
    let (ocsf, _) = replay(&["--alert-format", "ocsf"]);
    assert_eq!(json.len(), ocsf.len());
    for (j, o) in json.iter().zip(&ocsf) {
        assert_eq!(o["class_uid"], 2004);
        assert_eq!(o["finding_info"]["uid"], j["alert_id"]);
        let activity = if j["status"] == "open" { 1 } else { 3 };
        assert_eq!(o["activity_id"], activity);
        assert_eq!(o["type_uid"], 200400 + activity);
    }
}

#[test]
fn scenario_dead_letters_carry_reason_codes_and_no_secrets() {
    let dir = std::env::temp_dir().join(format!("nhi-drift-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let dead = dir.join("dead.jsonl");
    let (_, stderr) = replay(&["--dead-letter", dead.to_str().expect("utf-8 path")]);
    let letters: Vec<Value> = std::fs::read_to_string(&dead)
        .expect("dead letters written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter JSON"))
        .collect();
    assert!(
        !letters.is_empty(),
        "the scenario has malformed lines; summary:\n{stderr}"
    );
    for letter in &letters {
        for field in ["reason", "error", "topic", "partition", "offset", "payload"] {
            assert!(letter.get(field).is_some(), "{letter} lacks {field}");
        }
    }
    let all = std::fs::read_to_string(&dead).expect("read");
    assert!(!all.contains("REDACTED-EXAMPLE"));
}
