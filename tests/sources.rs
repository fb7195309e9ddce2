//! `[[sources]]` in the service: CloudTrail records published to a source topic are
//! adapted, reach the pipeline as native events do, fire the findings `replay --format
//! cloudtrail` finds, and are counted per format and outcome in
//! `nhi_drift_adapter_records_total`.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Broker, Scratch, Service, free_port, topic_env};

const TRAIL: &str =
    "tests/fixtures/datasets/otrf-aws-entra/ec2_proxy_s3_exfiltration_2020-09-14011940.json";

#[test]
fn a_cloudtrail_source_topic_is_adapted_into_the_pipeline() {
    let scratch = Scratch::new("sources");
    let broker = Broker::start(&["src"]);
    broker
        .cluster
        .create_topic("src.cloudtrail", 1, 1)
        .expect("source topic");
    broker.publish(std::path::Path::new(TRAIL), "src.cloudtrail");
    let config = scratch.0.join("sources.toml");
    std::fs::write(
        &config,
        "[[sources]]\ntopic = \"src.cloudtrail\"\nformat = \"cloudtrail\"\n",
    )
    .expect("config");
    let port = free_port();
    let log_path = scratch.0.join("run.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("NHI_DRIFT_KAFKA__BROKERS", broker.bootstrap())
        .env("NHI_DRIFT_KAFKA__GROUP_ID", "src")
        .env("NHI_DRIFT_CHECKPOINT__DIR", scratch.0.join("state"))
        .env("NHI_DRIFT_INPUT__MAX_FUTURE", "off")
        .envs(topic_env("src"))
        .env("NHI_DRIFT_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn nhi-drift run");
    let mut service = Service {
        child,
        port,
        log: log_path,
    };
    service.wait_ready();
    let deadline = Instant::now() + Duration::from_secs(120);
    let fired = |alerts: &[Value]| {
        alerts.iter().any(|a| {
            a["rule_id"] == "NHI-GOV-001"
                && a["identity"].as_str().is_some_and(|i| {
                    i.ends_with("role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0")
                })
                && a["opened_at"] == "2020-09-14T01:00:04Z"
        })
    };
    loop {
        if fired(&broker.values("src.alerts")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no NHI-GOV-001 for the instance role: {}",
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every record was adapted; the events went to the input topics by type.
    let (_, metrics) = service.get("/metrics").expect("metrics");
    assert!(
        metrics.lines().any(|l| l
            == "nhi_drift_adapter_records_total{format=\"cloudtrail\",outcome=\"adapted\"} 103"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("adapter_records"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let used = broker
        .values("src.credential")
        .iter()
        .filter(|e| e["type"] == "credential.used")
        .count();
    assert!(used > 0);
    assert!(broker.values("src.deadletter").is_empty());
    service.terminate();
}
