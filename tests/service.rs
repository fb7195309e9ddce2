//! `nhi-drift run` against a Kafka-protocol broker owned by the test (librdkafka's mock
//! cluster over loopback TCP): end to end against `replay`, graceful restart, `kill -9`
//! crashes, and broker faults. Every run must give the alerts of the uninterrupted run.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::Value;
use support::{
    Broker, RunSettings, Scratch, Service, assert_same_alerts, by_id, checkpoint_offsets, replay,
    wait_checkpointed, with_clock_event,
};

/// A generated stream big enough to be interrupted several times.
fn generated(dir: &Path) -> (std::path::PathBuf, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .args([
            "generate",
            "--identities",
            "400",
            "--days",
            "10",
            "--seed",
            "3",
        ])
        .output()
        .expect("generate");
    assert!(output.status.success());
    let path = dir.join("stream.jsonl");
    let as_of = with_clock_event(&String::from_utf8_lossy(&output.stdout), &path);
    (path, as_of)
}

fn settings<'a>(
    broker: &'a str,
    scratch: &Scratch,
    name: &str,
    alerts: &'a str,
) -> (RunSettings<'a>, std::path::PathBuf) {
    let state = scratch.0.join(format!("state-{name}"));
    let s = RunSettings {
        brokers: broker,
        group: "",
        state_dir: state.clone(),
        alerts_topic: alerts,
        log: scratch.0.join(format!("{name}.log")),
        checkpoint_interval: "300ms",
    };
    (s, state)
}

#[test]
fn alerts_and_dead_letters_match_replay() {
    let scratch = Scratch::new("e2e");
    let broker = Broker::start(&["nhi.alerts"]);
    let bootstrap = broker.bootstrap();
    let scenario = std::fs::read_to_string("examples/scenario.jsonl").expect("scenario");
    let fixture = scratch.0.join("scenario.jsonl");
    let as_of = with_clock_event(&scenario, &fixture);
    broker.produce(&fixture);

    let (mut run, state) = settings(&bootstrap, &scratch, "e2e", "nhi.alerts");
    run.group = "e2e";
    let mut service = Service::start(&run);
    service.wait_ready();
    assert_eq!(service.get("/healthz").map(|r| r.0), Some(200));
    wait_checkpointed(&mut service, &state, &broker.input_end_offsets());
    service.terminate();

    let expected = replay(&fixture, &as_of);
    let consumed = broker.read_all("nhi.alerts");
    for (key, alert) in &consumed {
        assert_eq!(
            key.as_deref(),
            alert["identity"].as_str(),
            "alerts are keyed by identity"
        );
    }
    let (got, duplicates) = by_id(consumed.into_iter().map(|(_, a)| a));
    let (want, _) = by_id(expected);
    assert_eq!(duplicates, 0, "a clean run sends each alert once");
    assert_same_alerts(&got, &want, "the service against replay");
    assert!(
        want.len() >= 15,
        "the scenario fires alerts: {}",
        want.len()
    );

    let dead: Vec<Value> = broker
        .read_all("nhi.deadletter")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let replay_dead = scratch.0.join("dead.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .arg("replay")
        .arg(&fixture)
        .args(["--as-of", &as_of, "--out", "/dev/null", "--dead-letter"])
        .arg(&replay_dead)
        .status()
        .expect("replay");
    assert!(status.success());
    let reason_and_payload = |d: &Value| (d["reason"].to_string(), d["payload"].to_string());
    let mut want: Vec<_> = std::fs::read_to_string(&replay_dead)
        .expect("dead letters")
        .lines()
        .map(|l| reason_and_payload(&serde_json::from_str(l).expect("JSON")))
        .collect();
    let mut got: Vec<_> = dead.iter().map(reason_and_payload).collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), 3, "the scenario's 3 malformed lines: {dead:?}");
    assert_eq!(
        got, want,
        "the same reasons and payloads as replay's dead letters"
    );
    for d in &dead {
        assert!(
            support::INPUTS.contains(&d["topic"].as_str().unwrap_or_default()),
            "{d}"
        );
        assert!(d["partition"].is_i64() && d["offset"].is_i64(), "{d}");
    }
}

/// Runs the stream once without interruption; returns its alerts.
fn uninterrupted(broker: &Broker, scratch: &Scratch, alerts_topic: &str) -> Vec<Value> {
    let bootstrap = broker.bootstrap();
    let (mut run, state) = settings(&bootstrap, scratch, "reference", alerts_topic);
    run.group = "reference";
    let mut service = Service::start(&run);
    service.wait_ready();
    wait_checkpointed(&mut service, &state, &broker.input_end_offsets());
    service.terminate();
    broker
        .read_all(alerts_topic)
        .into_iter()
        .map(|(_, a)| a)
        .collect()
}

/// Waits until the service has consumed at least `records` (from its checkpoint).
fn wait_progress(service: &mut Service, state: &Path, records: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if checkpoint_offsets(state).values().sum::<i64>() >= records {
            return;
        }
        if let Ok(Some(status)) = service.child.try_wait() {
            panic!("service exited with {status}: {}", service.log_text());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no progress to {records}: {}", service.log_text());
}

#[test]
fn graceful_restart_and_kill_9_lose_and_invent_nothing() {
    let scratch = Scratch::new("restart");
    let broker = Broker::start(&["alerts.reference", "alerts.restart", "alerts.crash"]);
    let bootstrap = broker.bootstrap();
    let (stream, as_of) = generated(&scratch.0);
    broker.produce(&stream);
    let end = broker.input_end_offsets();
    let total: i64 = end.values().sum();

    let reference = uninterrupted(&broker, &scratch, "alerts.reference");
    let (reference_map, reference_dups) = by_id(reference.clone());
    assert_eq!(reference_dups, 0);
    assert!(
        reference_map.len() >= 25,
        "the stream fires alerts: {}",
        reference_map.len()
    );
    assert_same_alerts(
        &reference_map,
        &by_id(replay(&stream, &as_of)).0,
        "the uninterrupted run against replay",
    );

    // Graceful: SIGTERM mid-stream, then start again from the checkpoint.
    let (mut run, state) = settings(&bootstrap, &scratch, "restart", "alerts.restart");
    run.group = "restart";
    let mut service = Service::start(&run);
    service.wait_ready();
    wait_progress(&mut service, &state, total / 3);
    service.terminate();
    let mut service = Service::start(&run);
    service.wait_ready();
    wait_checkpointed(&mut service, &state, &end);
    service.terminate();
    let restarted: Vec<Value> = broker
        .read_all("alerts.restart")
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let (restarted_map, restarted_dups) = by_id(restarted);
    assert_same_alerts(&restarted_map, &reference_map, "after a graceful restart");
    assert_eq!(restarted_dups, 0, "a graceful stop re-sends nothing");

    // Crash: kill -9 at several points, restart from the checkpoint directory each time.
    let (mut run, state) = settings(&bootstrap, &scratch, "crash", "alerts.crash");
    run.group = "crash";
    for fraction in [5, 3, 2] {
        let mut service = Service::start(&run);
        service.wait_ready();
        wait_progress(&mut service, &state, total / fraction);
        service.kill();
        let at: i64 = checkpoint_offsets(&state).values().sum();
        eprintln!("kill -9 with {at} of {total} records checkpointed");
    }
    let mut service = Service::start(&run);
    service.wait_ready();
    wait_checkpointed(&mut service, &state, &end);
    service.terminate();
    let crashed: Vec<Value> = broker
        .read_all("alerts.crash")
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let sent = crashed.len();
    let (crashed_map, crashed_dups) = by_id(crashed);
    assert_same_alerts(&crashed_map, &reference_map, "after three kill -9");
    eprintln!(
        "kill -9 ×3: {sent} alerts sent for {} distinct; {crashed_dups} re-sent after crashes",
        crashed_map.len()
    );
}

#[test]
fn broker_faults_are_retried_reported_and_lose_nothing() {
    let scratch = Scratch::new("faults");
    let broker = Broker::start(&["alerts.reference", "alerts.faults"]);
    let bootstrap = broker.bootstrap();
    let (stream, _) = generated(&scratch.0);
    broker.produce(&stream);
    let end = broker.input_end_offsets();
    let total: i64 = end.values().sum();
    let reference = uninterrupted(&broker, &scratch, "alerts.reference");

    let (mut run, state) = settings(&bootstrap, &scratch, "faults", "alerts.faults");
    run.group = "faults";
    let mut service = Service::start(&run);
    service.wait_ready();
    wait_progress(&mut service, &state, total / 4);

    // Broker down: readiness reports it, then recovers once the broker is back.
    broker.cluster.broker_down(1).expect("broker down");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reported = None;
    while Instant::now() < deadline {
        if let Some((503, body)) = service.get("/readyz")
            && body.contains("broker")
        {
            reported = Some(body);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        reported.is_some(),
        "readyz reports the broker outage: {}",
        service.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    broker.cluster.broker_up(1).expect("broker up");

    // Injected request errors on produce and fetch: retried, nothing lost.
    broker.cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 4],
    );
    broker.cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 4],
    );
    wait_checkpointed(&mut service, &state, &end);
    let log = service.log_text();
    service.terminate();
    assert!(
        log.to_lowercase().contains("broker") || log.contains("transport"),
        "the outage is logged: {log}"
    );
    let faulted: Vec<Value> = broker
        .read_all("alerts.faults")
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let (faulted_map, duplicates) = by_id(faulted);
    assert_same_alerts(&faulted_map, &by_id(reference).0, "through broker faults");
    eprintln!("broker faults: {duplicates} alerts re-sent");
}
