//! Event-time behaviour: redeliveries change nothing, late events update the inventory
//! but join no window, and results do not depend on how records are batched.

use std::process::Command;

mod support;

use serde_json::Value;
use support::{replay_args, write_lines};

#[test]
fn a_redelivered_stream_changes_nothing() {
    let (once, _) = replay_args(&["examples/scenario.jsonl"], &[]);
    let (twice, summary) =
        replay_args(&["examples/scenario.jsonl", "examples/scenario.jsonl"], &[]);
    assert_eq!(once, twice);
    // Contract v2: an id is remembered only while its window is open. Of the 356 events
    // read again, the one still in an open window is a duplicate; the rest arrive after
    // their windows closed, are late, and change nothing (a merge by event time).
    assert!(summary.contains("duplicates 1 "), "{summary}");
    assert!(summary.contains("late 355 "), "{summary}");
}

/// Runs `test` on a pipeline with the default config and the bundled rules, and the
/// decoder of that config, inside a runtime.
fn in_pipeline<F: std::future::Future<Output = ()>>(
    test: impl FnOnce(nhi_drift::pipeline::Pipeline, nhi_drift::event::Decoder) -> F,
) {
    use nhi_drift::pipeline::{Options, Pipeline};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let config = nhi_drift::config::Config::load_with_env(None, Vec::new()).expect("config");
        let rules = nhi_drift::engine::rule::load_rules(None).expect("rules");
        let pipeline = Pipeline::new(Options::from_config(&config), rules, &config.rule_params)
            .await
            .expect("pipeline");
        test(pipeline, nhi_drift::event::Decoder::from_config(&config)).await;
    });
}

#[test]
fn late_events_update_state_but_join_no_window() {
    // The identity was never approved, so each use is NHI-GOV-001 material. The use at
    // 10:01 arrives after the watermark (10:10 - 5 min) closed its window: it is late.
    let path = write_lines(
        "time",
        "late.jsonl",
        &[
            r#"{"id":"a1","type":"identity.registered","time":"2026-01-01T09:00:00Z","identity":"svc-a","kind":"service_account"}"#,
            r#"{"id":"a2","type":"credential.issued","time":"2026-01-01T09:00:00Z","identity":"svc-a","credential":"k1","kind":"api_key"}"#,
            r#"{"id":"a3","type":"identity.approved","time":"2026-01-01T09:00:30Z","identity":"svc-a","approver":"p","scopes":[]}"#,
            r#"{"id":"b1","type":"credential.issued","time":"2026-01-01T10:10:00Z","identity":"svc-b","credential":"k2","kind":"api_key"}"#,
            r#"{"id":"b2","type":"credential.used","time":"2026-01-01T10:01:00Z","identity":"svc-b","credential":"k2"}"#,
        ],
    );
    let (alerts, summary) = replay_args(&[path.to_str().expect("path")], &[]);
    assert!(summary.contains("late 1"), "{summary}");
    assert!(
        !alerts.iter().any(|a| a["rule_id"] == "NHI-GOV-001"),
        "a late use joins no window: {alerts:?}"
    );
    // The same use on time does fire.
    let path = write_lines(
        "time",
        "on-time.jsonl",
        &[
            r#"{"id":"b1","type":"credential.issued","time":"2026-01-01T10:00:00Z","identity":"svc-b","credential":"k2","kind":"api_key"}"#,
            r#"{"id":"b2","type":"credential.used","time":"2026-01-01T10:01:00Z","identity":"svc-b","credential":"k2"}"#,
        ],
    );
    let (alerts, _) = replay_args(&[path.to_str().expect("path")], &[]);
    assert!(
        alerts.iter().any(|a| a["rule_id"] == "NHI-GOV-001"),
        "{alerts:?}"
    );
}

#[test]
fn batch_size_does_not_change_results() {
    // A generated stream long enough for many batches: 50-row batches flush every few
    // evaluations, the default batch holds the whole stream.
    let dir = std::env::temp_dir().join(format!("nhi-drift-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let stream = dir.join("gen.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .args([
            "generate",
            "--identities",
            "300",
            "--days",
            "30",
            "--seed",
            "5",
            "--out",
        ])
        .arg(&stream)
        .status()
        .expect("generate");
    assert!(status.success());
    let (default, _) = replay_args(&[stream.to_str().expect("path")], &[]);
    let (small, _) = replay_args(
        &[stream.to_str().expect("path")],
        &[("NHI_DRIFT_INPUT__BATCH_ROWS", "50")],
    );
    assert!(
        default.len() >= 20,
        "the stream should produce alerts, got {}",
        default.len()
    );
    assert_eq!(default, small);
}

#[test]
fn idle_advance_moves_event_time_and_opens_what_became_due() {
    use nhi_drift::event::time::parse_rfc3339;

    in_pipeline(|mut pipeline, decoder| async move {
        for line in [
            r#"{"id":"i1","type":"identity.registered","time":"2026-01-01T00:00:00Z","identity":"svc-a","kind":"service_account"}"#,
            r#"{"id":"i2","type":"identity.owner_assigned","time":"2026-01-01T00:00:00Z","identity":"svc-a","business_owner":"b","technical_custodian":"t"}"#,
            r#"{"id":"i3","type":"identity.approved","time":"2026-01-01T00:00:00Z","identity":"svc-a","approver":"p","scopes":[]}"#,
            r#"{"id":"c1","type":"credential.issued","time":"2026-01-01T00:00:00Z","identity":"svc-a","credential":"k1","kind":"api_key"}"#,
        ] {
            pipeline.push_event(decoder.decode(line.as_bytes()).expect("valid"));
        }
        // Without traffic event time stands still: nothing closes, nothing is due.
        assert!(pipeline.flush().await.expect("flush").is_empty());
        assert_eq!(pipeline.watermark(), parse_rfc3339("2025-12-31T23:55:00Z"));

        // The idle-advance policy moves event time to "now" (91 days later).
        let now = parse_rfc3339("2026-04-02T00:00:00Z").expect("time");
        pipeline.advance_idle(now);
        let alerts = pipeline.flush().await.expect("flush");
        let watermark = now - 300_000_000;
        assert_eq!(pipeline.watermark(), Some(watermark));
        let rotation = alerts
            .iter()
            .find(|a| a.rule_id == "NHI-ROT-001")
            .expect("the api key passed 90 days without rotation");
        assert_eq!(
            rotation.opened_at,
            parse_rfc3339("2026-04-01T00:00:00Z").expect("time")
        );
        // Judged at the end of the window in which "more than 90 days" became true (state
        // is judged at every window end the watermark passes), not at the watermark.
        assert_eq!(
            rotation.detected_at,
            parse_rfc3339("2026-04-01T00:01:00Z").expect("time")
        );
    });
}

#[test]
fn a_far_future_event_is_dead_lettered_and_does_not_stop_detection() {
    // One valid event stamped 9999-12-31 in the middle of the scenario.
    let scenario = std::fs::read_to_string("examples/scenario.jsonl").expect("scenario");
    let mut lines: Vec<&str> = scenario.lines().collect();
    let future = r#"{"id":"far-future","type":"credential.used","time":"9999-12-31T23:59:59Z","identity":"svc-billing-exporter","credential":"key-be-91d0"}"#;
    lines.insert(lines.len() / 2, future);
    let path = write_lines("time", "future.jsonl", &lines);
    let dead = path.with_extension("dead.jsonl");
    let (alerts, summary) = replay_args(
        &[
            path.to_str().expect("path"),
            "--dead-letter",
            dead.to_str().expect("path"),
        ],
        &[],
    );
    let (plain, _) = replay_args(&["examples/scenario.jsonl"], &[]);
    assert_eq!(alerts, plain, "the far-future event changes nothing");
    assert!(summary.contains("future_time"), "{summary}");
    let letters: Vec<Value> = std::fs::read_to_string(&dead)
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let letter = letters
        .iter()
        .find(|l| l["reason"] == "future_time")
        .unwrap_or_else(|| panic!("a future_time dead letter: {letters:?}"));
    assert_eq!(
        letter["payload"], future,
        "with the payload, like every reject"
    );
    assert!(
        letter["error"]
            .as_str()
            .is_some_and(|e| e.contains("9999-12-31")),
        "{letter}"
    );

    // Without the check the same event moves the watermark to the year 9999: every later
    // event is late and detection stops — what `input.max_future` prevents.
    let config = path.with_extension("toml");
    std::fs::write(&config, "[input]\nmax_future = \"off\"\n").expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .args(["--config", config.to_str().expect("path"), "replay"])
        .arg(&path)
        .output()
        .expect("replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let late: u64 = stderr
        .split_whitespace()
        .skip_while(|w| *w != "late")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a late count: {stderr}"));
    assert!(
        late as usize >= lines.len() / 3,
        "unchecked, every event after it is late: {late}\n{stderr}"
    );
    assert!(summary.contains("late 0"), "checked, none is: {summary}");
}

#[test]
fn equal_times_are_ordered_by_class_and_id_not_by_arrival() {
    // Reverse every run of lines with equal times: the order of arrival changes, the
    // contract's order (non-activity first, then by id) does not, and neither do alerts.
    let scenario = std::fs::read_to_string("examples/scenario.jsonl").expect("scenario");
    let time_of = |line: &str| {
        serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v["time"].as_str().map(str::to_owned))
    };
    let lines: Vec<&str> = scenario.lines().collect();
    let mut shuffled: Vec<&str> = Vec::with_capacity(lines.len());
    let mut reversed_runs = 0;
    let mut i = 0;
    while i < lines.len() {
        let t = time_of(lines[i]);
        let mut j = i + 1;
        while j < lines.len() && t.is_some() && time_of(lines[j]) == t {
            j += 1;
        }
        reversed_runs += usize::from(j - i > 1);
        shuffled.extend(lines[i..j].iter().rev());
        i = j;
    }
    assert!(
        reversed_runs >= 10,
        "the scenario has equal times: {reversed_runs}"
    );
    let path = write_lines("time", "equal-times.jsonl", &shuffled);
    let (original, _) = replay_args(&["examples/scenario.jsonl"], &[]);
    let (reordered, _) = replay_args(&[path.to_str().expect("path")], &[]);
    assert_eq!(original, reordered);
}

#[test]
fn flush_leaves_nothing_waiting_when_findings_fall_due_behind_the_watermark() {
    use nhi_drift::event::time::parse_rfc3339;

    in_pipeline(|mut pipeline, decoder| async move {
        // The JIT token's grace runs out at 10:25, which only the query run of the 10:21
        // evaluation reveals; by then the watermark (11:00 - 5 min) is already past it.
        for line in [
            r#"{"id":"e1","type":"identity.registered","time":"2026-03-09T10:00:00Z","identity":"agent-a","kind":"ai_agent"}"#,
            r#"{"id":"e2","type":"credential.issued","time":"2026-03-09T10:00:00Z","identity":"agent-a","credential":"jit-1","kind":"jit_token","task":"T1","expires":"2026-03-09T12:00:00Z"}"#,
            r#"{"id":"e3","type":"task.completed","time":"2026-03-09T10:20:00Z","identity":"agent-a","task":"T1"}"#,
            r#"{"id":"e4","type":"identity.registered","time":"2026-03-09T11:00:00Z","identity":"agent-b","kind":"ai_agent"}"#,
        ] {
            pipeline.push_event(decoder.decode(line.as_bytes()).expect("valid"));
        }
        let alerts = pipeline.flush().await.expect("flush");
        assert!(
            !pipeline.has_pending_evaluations(),
            "flush judged what fell due behind the watermark"
        );
        let jit = alerts
            .iter()
            .find(|a| a.rule_id == "NHI-JIT-001")
            .unwrap_or_else(|| panic!("the JIT finding opens in this flush: {alerts:?}"));
        assert_eq!(
            jit.detected_at,
            parse_rfc3339("2026-03-09T10:26:00Z").expect("time")
        );
        pipeline.state().expect("a checkpoint can follow");
    });
}
