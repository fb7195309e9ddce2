//! `/metrics` of a running service: a real `promtool check metrics` finds nothing to
//! complain about, every metric is there with its known labels, and `docs/metrics.md`
//! lists exactly the metrics the service exports (`UPDATE_DOCS=1` rewrites it).

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{Scratch, exported_metrics, replay, serve_scenario, with_clock_event};

const DOC: &str = "docs/metrics.md";

/// The metric list as `docs/metrics.md` shows it.
fn metrics_doc() -> String {
    let mut out = String::from(
        "# Metrics\n\n\
         Served by `nhi-drift run` on `/metrics` (`http.listen`, default `127.0.0.1:9898`) in\n\
         the Prometheus text format. Generated from the service's registry by\n\
         `UPDATE_DOCS=1 cargo test --test metrics`; the test fails when this list and the\n\
         service disagree. Times are Unix seconds; durations are seconds. Labels are bounded:\n\
         `topic` (the three input topics), `reason` (reject reason codes), `rule` (rule ids),\n\
         `severity`, `status` (`open`, `resolved`), `version`, `kind` (`assigned`,\n\
         `revoked`). Every series is per instance: with several instances, sum them across\n\
         Prometheus's `instance` label for a total.\n\n\
         | metric | type | labels | meaning |\n|---|---|---|---|\n",
    );
    for (name, kind, help, labels) in exported_metrics().describe() {
        out.push_str(&format!(
            "| `{name}` | {kind} | {} | {help} |\n",
            if labels.is_empty() {
                "—".to_owned()
            } else {
                labels.join(", ")
            }
        ));
    }
    out
}

#[test]
fn docs_list_every_exported_metric() {
    let expected = metrics_doc();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(DOC, &expected).expect("write docs");
    }
    let actual = std::fs::read_to_string(DOC).expect("docs/metrics.md");
    assert_eq!(
        actual, expected,
        "docs/metrics.md is stale: UPDATE_DOCS=1 cargo test --test metrics"
    );
}

#[test]
fn promtool_finds_nothing_to_complain_about() {
    let scratch = Scratch::new("metrics");
    let (_broker, service) = serve_scenario(&scratch);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, text) = service.get("/metrics").expect("metrics answer");
    service.terminate();
    assert_eq!(status, 200);

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let output = promtool.wait_with_output().expect("promtool");
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "promtool: {complaints}"
    );

    // Every documented metric is exported, with values from the run.
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
    };
    // The metrics contract §6 asks for, named here independently of the registry.
    for name in [
        "nhi_drift_events_consumed_total",
        "nhi_drift_events_rejected_total",
        "nhi_drift_events_late_total",
        "nhi_drift_alerts_emitted_total",
        "nhi_drift_open_alerts",
        "nhi_drift_identities_tracked",
        "nhi_drift_credentials_tracked",
        "nhi_drift_credentials_rotation_overdue",
        "nhi_drift_credentials_rotation_overdue_ratio",
        "nhi_drift_watermark_timestamp_seconds",
        "nhi_drift_last_event_timestamp_seconds",
        "nhi_drift_consumer_lag_records",
        "nhi_drift_evaluation_duration_seconds",
        "nhi_drift_rule_evaluation_duration_seconds",
        "nhi_drift_build_info",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} exported");
    }
    assert_eq!(
        value("nhi_drift_events_consumed_total{topic=\"nhi.identity\"}"),
        75.0
    );
    assert!(value("nhi_drift_events_rejected_total{reason=\"invalid_json\"}") >= 1.0);
    // Twelve identities; svc-legacy-reporting, offboarded, held nothing after 20 March and
    // is forgotten 30 days later (contract §2.2), before the clock event's watermark.
    assert_eq!(value("nhi_drift_identities_tracked"), 11.0);
    let emitted: f64 = text
        .lines()
        .filter(|l| l.starts_with("nhi_drift_alerts_emitted_total{"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum();
    // As many as a replay of the same input finds.
    let scenario = std::fs::read_to_string("examples/scenario.jsonl").expect("scenario");
    let reference = scratch.0.join("reference.jsonl");
    let as_of = with_clock_event(&scenario, &reference);
    let replayed = replay(&reference, &as_of).len();
    assert!(replayed >= 15, "the scenario fires alerts: {replayed}");
    assert_eq!(emitted, replayed as f64, "the scenario's alerts");
    assert!(value("nhi_drift_watermark_timestamp_seconds") > 1.7e9);
    assert_eq!(value("nhi_drift_ready"), 1.0);
}
