//! Bad input of every kind is dead-lettered with its reason code, bounded, and the
//! good events after it still count.

use std::process::Command;

use serde_json::Value;

#[test]
fn every_reason_code_is_dead_lettered_and_processing_continues() {
    let dir = std::env::temp_dir().join(format!("nhi-drift-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let input = dir.join("bad.jsonl");
    let mut lines: Vec<Vec<u8>> = vec![
        b"{\"id\":\"x1\",\"type\":\"task.completed\",\"identity\":\"a\",\"task\":\"\xff\xfe\"}".to_vec(),
        format!(r#"{{"id":"x2","type":"task.completed","time":"2026-01-01T00:00:00Z","identity":"a","task":"{}"}}"#, "t".repeat(300)).into_bytes(),
        b"{\"id\":\"x3\",".to_vec(),
        br#"{"id":"x4","type":"credential.used","identity":"a","credential":"k"}"#.to_vec(),
        br#"{"id":"x5","type":"credential.exploded","time":"2026-01-01T00:00:00Z","identity":"a"}"#.to_vec(),
        br#"{"id":"x6","type":"credential.used","time":"2026-01-01T00:00:00Z","identity":"a","password":"hunter2"}"#.to_vec(),
        br#"{"id":"x7","type":"tool.called","time":"2026-01-01T00:00:00Z","identity":"a","tool":"t","sensitivity":"top-secret"}"#.to_vec(),
        br#"{"id":"x8","type":"task.completed","time":"9999-12-31T23:59:59Z","identity":"a","task":"t"}"#.to_vec(),
    ];
    for i in 0..5 {
        lines.push(format!(r#"{{"id":"ok{i}","type":"credential.used","time":"2026-01-01T00:0{i}:00Z","identity":"svc","credential":"k1","token":"tok-5ECRET-{i}"}}"#).into_bytes());
    }
    let mut text = Vec::new();
    for line in lines {
        text.extend_from_slice(&line);
        text.push(b'\n');
    }
    std::fs::write(&input, text).expect("write");
    let config = dir.join("small.toml");
    std::fs::write(&config, "[input]\nmax_event_bytes = 256\n").expect("write");
    let dead = dir.join("dead.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .args([
            "--config",
            config.to_str().expect("path"),
            "replay",
            input.to_str().expect("path"),
        ])
        .args(["--dead-letter", dead.to_str().expect("path")])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let letters: Vec<Value> = std::fs::read_to_string(&dead)
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(
        reasons,
        [
            "invalid_utf8",
            "too_large",
            "invalid_json",
            "missing_field",
            "unknown_type",
            "missing_field",
            "invalid_field",
            "future_time"
        ]
    );
    assert_eq!(letters[0]["offset"], 1);
    assert!(letters.iter().all(|l| {
        l["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty() && e.len() < 300)
    }));
    let dead_text = std::fs::read_to_string(&dead).expect("read");
    assert!(!dead_text.contains("hunter2"), "secret leaked: {dead_text}");
    assert!(
        stderr.contains("accepted 5"),
        "good events after bad ones count:\n{stderr}"
    );
    // The good events carry a `token`; they fire alerts (an unapproved identity used a
    // credential), and the value appears in no output.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("NHI-GOV-001"),
        "the events with a token were processed: {stdout}"
    );
    for (what, text) in [
        ("alerts", &*stdout),
        ("log", &*stderr),
        ("dead letters", &*dead_text),
    ] {
        assert!(
            !text.contains("5ECRET"),
            "a secret-named field leaked into the {what}"
        );
    }
}
