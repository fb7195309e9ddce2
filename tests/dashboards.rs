//! The Grafana dashboards in `dashboards/`: every panel is complete and uses only metrics
//! the service exports, and a real Prometheus server scraping a service that processed
//! the scenario evaluates every panel query to at least one series.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Scratch, exported_metrics, free_port, serve_scenario};

const DATASOURCE_UID: &str = "nhi-drift-prometheus";

fn dashboards() -> Vec<(PathBuf, Value)> {
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir("dashboards")
        .expect("dashboards/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read dashboard");
            let json = serde_json::from_str(&text).expect("dashboard is JSON");
            (p, json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 2, "posture and pipeline dashboards");
    out
}

/// Every panel `expr` of every dashboard.
fn exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, dash) in dashboards() {
        for panel in dash["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default().to_owned();
                out.push((format!("{}: {}", path.display(), panel["title"]), expr));
            }
        }
    }
    out
}

fn exported_names() -> BTreeSet<String> {
    exported_metrics()
        .describe()
        .into_iter()
        .map(|(name, _, _, _)| name)
        .collect()
}

/// The `nhi_drift_*` metric names an expression uses, without histogram suffixes.
fn names_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("nhi_drift_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        names.push(expr[start..end].to_owned());
        i = end;
    }
    names
}

#[test]
fn every_panel_is_complete_and_uses_exported_metrics() {
    let exported = exported_names();
    let mut uids = BTreeSet::new();
    for (path, dash) in dashboards() {
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            !text.contains("__inputs") && !text.contains("${DS_"),
            "{path:?}: no import placeholders"
        );
        let uid = dash["uid"].as_str().expect("uid");
        assert!(uids.insert(uid.to_owned()), "duplicate dashboard uid {uid}");
        assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
        let panels = dash["panels"].as_array().expect("panels");
        assert!(!panels.is_empty());
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default();
            let what = format!("{}: panel {title:?}", path.display());
            assert!(!title.is_empty(), "{what}: title");
            assert!(
                panel["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{what}: description"
            );
            assert!(
                panel["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .is_some_and(|u| !u.is_empty()),
                "{what}: unit"
            );
            assert_eq!(
                panel["datasource"]["uid"], DATASOURCE_UID,
                "{what}: datasource"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{what}: queries");
            for target in targets {
                assert_eq!(
                    target["datasource"]["uid"], DATASOURCE_UID,
                    "{what}: target datasource"
                );
                let expr = target["expr"].as_str().expect("expr");
                for name in names_in(expr) {
                    let base = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s).filter(|b| exported.contains(*b)))
                        .unwrap_or(&name);
                    assert!(exported.contains(base), "{what}: {name} is not exported");
                    if name.ends_with("_total") || name.ends_with("_bucket") {
                        let before = &expr[..expr.find(&name).expect("found")];
                        assert!(
                            before.contains("rate(") || before.contains("increase("),
                            "{what}: counter {name} outside rate()/increase()"
                        );
                        assert!(
                            expr.contains("[$__rate_interval]"),
                            "{what}: use $__rate_interval"
                        );
                    }
                }
            }
        }
    }
}

/// PromQL aggregation operators: each instance exports its own series (Prometheus adds
/// the `instance` label), so a panel meaning a total or an extreme aggregates over them.
const AGGREGATIONS: [&str; 8] = [
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile",
];

/// Whether every metric selector of `expr` is inside an aggregation operator's argument
/// (`sum(...)`, `sum by (l) (...)`, `max without (l) (...)`).
fn every_selector_aggregated(expr: &str) -> Result<(), String> {
    let bytes = expr.as_bytes();
    // For each open parenthesis: whether it opens an aggregation's argument.
    let mut open: Vec<bool> = Vec::new();
    let mut pending_aggregation = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &expr[start..i];
            if word.starts_with("nhi_drift_") {
                if !open.iter().any(|&a| a) {
                    return Err(format!("{word} is not aggregated over instances"));
                }
            } else if AGGREGATIONS.contains(&word) {
                pending_aggregation = true;
            } else if (word == "by" || word == "without") && pending_aggregation {
                // Skip the label list: the parenthesis after it is the argument.
                let close = expr[i..]
                    .find(')')
                    .map(|at| i + at + 1)
                    .unwrap_or(bytes.len());
                i = close;
            }
            continue;
        }
        match c {
            b'(' => {
                open.push(std::mem::take(&mut pending_aggregation));
            }
            b')' => {
                open.pop();
            }
            // Label matchers and ranges hold no selectors.
            b'{' => {
                i = expr[i..].find('}').map(|at| i + at).unwrap_or(bytes.len());
            }
            b'[' => {
                i = expr[i..].find(']').map(|at| i + at).unwrap_or(bytes.len());
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[test]
fn the_aggregation_check_finds_selectors_left_per_instance() {
    for good in [
        "sum(nhi_drift_open_alerts)",
        "sum by (rule) (increase(nhi_drift_alerts_emitted_total{status=\"open\"}[$__rate_interval]))",
        "histogram_quantile(0.99, sum by (le) (rate(nhi_drift_evaluation_duration_seconds_bucket[5m])))",
        "max(nhi_drift_last_event_timestamp_seconds) - min(nhi_drift_watermark_timestamp_seconds)",
        "sum(nhi_drift_a) / clamp_min(sum(nhi_drift_b), 1)",
    ] {
        assert_eq!(every_selector_aggregated(good), Ok(()), "{good}");
    }
    for bad in [
        "nhi_drift_identities_tracked",
        "rate(nhi_drift_evaluations_total[5m])",
        "histogram_quantile(0.5, rate(nhi_drift_x_bucket[5m]))",
        "sum(nhi_drift_a) - nhi_drift_b",
        "sum by (le) (nhi_drift_a) * nhi_drift_b{rule=\"x\"}",
    ] {
        assert!(every_selector_aggregated(bad).is_err(), "{bad}");
    }
}

#[test]
fn every_panel_query_aggregates_over_instances() {
    for (what, expr) in exprs() {
        if let Err(why) = every_selector_aggregated(&expr) {
            panic!("{what}: {expr}: {why} (several instances each export their own series)");
        }
    }
}

/// A Prometheus server on loopback, killed on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(port: u16, expr: &str) -> Option<Value> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET /api/v1/query?query={} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        encode(expr)
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let body = text.split("\r\n\r\n").nth(1)?;
    // Chunked or not, the JSON object is the outermost braces.
    let start = body.find('{')?;
    let end = body.rfind('}')?;
    serde_json::from_str(&body[start..=end]).ok()
}

#[test]
fn prometheus_evaluates_every_panel_query() {
    let scratch = Scratch::new("dashboards");
    let (_broker, service) = serve_scenario(&scratch);

    let port = free_port();
    let config = scratch.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: nhi-drift\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            service.port
        ),
    )
    .expect("prometheus config");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            scratch.0.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(scratch.0.join("prometheus.log")).expect("log"))
        .spawn()
        .expect("prometheus (Debian package prometheus; scripts/test installs it)");
    let _prometheus = Prometheus(child);

    // Wait for a few scrapes so rate() has samples.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let samples = query(port, "count_over_time(nhi_drift_ready[1m])")
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .map(str::to_owned)
            })
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0);
        if samples >= 5.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped the service: {}",
            std::fs::read_to_string(scratch.0.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut failures = Vec::new();
    for (panel, expr) in exprs() {
        let expr = expr.replace("$__rate_interval", "30s");
        match query(port, &expr) {
            Some(v) if v["status"] == "success" => {
                if v["data"]["result"].as_array().is_none_or(Vec::is_empty) {
                    failures.push(format!("{panel}: `{expr}` returned no series"));
                }
            }
            other => failures.push(format!("{panel}: `{expr}` failed: {other:?}")),
        }
    }
    service.terminate();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `docs/dashboards.md`: every dashboard and panel, with its query and unit.
fn dashboards_doc() -> String {
    let mut out = String::from(
        "# Dashboards\n\n\
         The Grafana dashboards in `dashboards/`, panel by panel. Generated from the JSON by\n\
         `UPDATE_DOCS=1 cargo test --test dashboards`; the test fails when this page and the\n\
         dashboards disagree. Every query reads the provisioned Prometheus datasource\n\
         (uid `nhi-drift-prometheus`); the metrics are listed in [metrics.md](metrics.md).\n",
    );
    for (path, dash) in dashboards() {
        out.push_str(&format!(
            "\n## {}\n\n`{}`, uid `{}`. {}\n\n| panel | shows | query | unit |\n|---|---|---|---|\n",
            dash["title"].as_str().unwrap_or_default(),
            path.display(),
            dash["uid"].as_str().unwrap_or_default(),
            dash["description"].as_str().unwrap_or_default()
        ));
        for panel in dash["panels"].as_array().into_iter().flatten() {
            let queries: Vec<String> = panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    format!(
                        "`{}`",
                        t["expr"].as_str().unwrap_or_default().replace('|', "\\|")
                    )
                })
                .collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                panel["title"].as_str().unwrap_or_default(),
                panel["description"].as_str().unwrap_or_default(),
                queries.join("<br>"),
                panel["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .unwrap_or_default()
            ));
        }
    }
    out
}

#[test]
fn docs_describe_every_panel() {
    let expected = dashboards_doc();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write("docs/dashboards.md", &expected).expect("write docs");
    }
    let actual = std::fs::read_to_string("docs/dashboards.md").expect("docs/dashboards.md");
    assert_eq!(
        actual, expected,
        "docs/dashboards.md is stale: UPDATE_DOCS=1 cargo test --test dashboards"
    );
}
