//! `nhi-drift run` against a Kafka-protocol broker owned by the test (librdkafka's mock
//! cluster over loopback TCP): end to end against `replay`, graceful restart, `kill -9`
//! crashes, broker faults, and exactly-once transactions through injected errors. Every run must give the alerts of the uninterrupted run.
//!
//! Interrupted runs get their input in slices while they run, so every stop and crash
//! happens with input still to read; each setup has its own topics (`<prefix>.*`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::Value;
use support::{
    Broker, RunSettings, Scratch, Service, assert_same_alerts, by_id, checkpoint_offsets,
    finish_input, replay, run_to_end, split, with_clock_event,
};

/// A generated stream (71 k events, every rule firing) with a final clock event.
fn generated(dir: &Path) -> (PathBuf, String) {
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

fn settings<'a>(broker: &'a str, scratch: &Scratch, prefix: &'a str) -> RunSettings<'a> {
    RunSettings::in_dir(broker, &scratch.0, prefix, "100ms")
}

fn checkpointed(run: &RunSettings<'_>) -> i64 {
    checkpoint_offsets(&run.state_dir).values().sum()
}

/// Waits until `service` has checkpointed past `records` input records.
fn wait_checkpoint_past(service: &mut Service, run: &RunSettings<'_>, records: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if checkpointed(run) > records {
            return;
        }
        if let Ok(Some(status)) = service.child.try_wait() {
            panic!("service exited with {status}: {}", service.log_text());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no checkpoint past {records}: {}", service.log_text());
}

/// Runs setup `prefix` over everything already produced, without interruption.
fn uninterrupted(broker: &Broker, scratch: &Scratch, prefix: &str) -> Vec<Value> {
    let bootstrap = broker.bootstrap();
    let run = settings(&bootstrap, scratch, prefix);
    let service = run_to_end(broker, &run);
    service.terminate();
    broker.values(&format!("{prefix}.alerts"))
}

#[test]
fn alerts_and_dead_letters_match_replay() {
    let scratch = Scratch::new("e2e");
    let broker = Broker::start(&["nhi"]);
    let bootstrap = broker.bootstrap();
    let scenario = std::fs::read_to_string("examples/scenario.jsonl").expect("scenario");
    let fixture = scratch.0.join("scenario.jsonl");
    let as_of = with_clock_event(&scenario, &fixture);
    // One valid event stamped far in the future: dead-lettered as future_time, it must
    // not move event time.
    let mut text = std::fs::read_to_string(&fixture).expect("fixture");
    text.push_str(r#"{"id":"far-future","type":"credential.used","time":"9999-12-31T23:59:59Z","identity":"svc-billing-exporter","credential":"key-be-91d0"}"#);
    text.push('\n');
    std::fs::write(&fixture, text).expect("fixture");
    broker.produce(&fixture, "nhi");

    let run = settings(&bootstrap, &scratch, "nhi");
    let mut service = Service::start(&run);
    service.wait_ready();
    assert_eq!(service.get("/healthz").map(|r| r.0), Some(200));
    finish_input(&broker, &run, &mut service);
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

    let dead = broker.values("nhi.deadletter");
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
    assert_eq!(
        got.len(),
        4,
        "the scenario's 3 malformed lines and the far-future event: {dead:?}"
    );
    assert!(
        dead.iter().any(|d| d["reason"] == "future_time"),
        "{dead:?}"
    );
    assert_eq!(
        got, want,
        "the same reasons and payloads as replay's dead letters"
    );
    for d in &dead {
        let topic = d["topic"].as_str().unwrap_or_default();
        assert!(support::inputs("nhi").iter().any(|t| t == topic), "{d}");
        assert!(d["partition"].is_i64() && d["offset"].is_i64(), "{d}");
    }
}

#[test]
fn graceful_restart_and_kill_9_lose_and_invent_nothing() {
    let scratch = Scratch::new("restart");
    let broker = Broker::start(&["reference", "restart", "crash"]);
    let bootstrap = broker.bootstrap();
    let (stream, as_of) = generated(&scratch.0);
    let slices = split(&stream, 4);

    broker.produce(&stream, "reference");
    let (reference, reference_dups) = by_id(uninterrupted(&broker, &scratch, "reference"));
    assert_eq!(reference_dups, 0);
    assert!(
        reference.len() >= 25,
        "the stream fires alerts: {}",
        reference.len()
    );
    assert_same_alerts(
        &reference,
        &by_id(replay(&stream, &as_of)).0,
        "the uninterrupted run against replay",
    );

    // Graceful: SIGTERM with input still arriving, then start again from the checkpoint.
    let run = settings(&bootstrap, &scratch, "restart");
    broker.produce(&slices[0], "restart");
    let mut service = Service::start(&run);
    service.wait_ready();
    broker.produce(&slices[1], "restart");
    wait_checkpoint_past(&mut service, &run, 0);
    service.terminate();
    let stopped_at = checkpointed(&run);
    for slice in &slices[2..] {
        broker.produce(slice, "restart");
    }
    let service = run_to_end(&broker, &run);
    service.terminate();
    let (restarted, restarted_dups) = by_id(broker.values("restart.alerts"));
    assert_same_alerts(&restarted, &reference, "after a graceful restart");
    assert_eq!(restarted_dups, 0, "a graceful stop re-sends nothing");
    eprintln!("graceful stop with {stopped_at} records checkpointed");

    // Crash: kill -9 as soon as this process has sent an alert — after the last
    // checkpoint, so it is sent again after the restart — and restart from the checkpoint
    // directory each time.
    let mut run = settings(&bootstrap, &scratch, "crash");
    run.checkpoint_interval = "500ms";
    for slice in &slices[..3] {
        broker.produce(slice, "crash");
        let produced: i64 = broker.input_end_offsets("crash").values().sum();
        let alerts_before = broker.count("crash.alerts");
        let mut service = Service::start(&run);
        service.wait_ready();
        let deadline = Instant::now() + Duration::from_secs(60);
        while broker.count("crash.alerts") == alerts_before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let read = service.consumed().unwrap_or(0);
        service.kill();
        eprintln!(
            "kill -9: {} of {produced} records checkpointed, this process had read {read}",
            checkpointed(&run)
        );
    }
    broker.produce(&slices[3], "crash");
    let service = run_to_end(&broker, &run);
    service.terminate();
    let crashed = broker.values("crash.alerts");
    let sent = crashed.len();
    let (crashed, crashed_dups) = by_id(crashed);
    assert_same_alerts(&crashed, &reference, "after three kill -9");
    eprintln!(
        "kill -9 ×3: {sent} alerts sent for {} distinct; {crashed_dups} re-sent after crashes",
        crashed.len()
    );
}

#[test]
fn broker_faults_are_retried_reported_and_lose_nothing() {
    let scratch = Scratch::new("faults");
    let broker = Broker::start(&["reference", "faults"]);
    let bootstrap = broker.bootstrap();
    let (stream, _) = generated(&scratch.0);
    let slices = split(&stream, 3);
    broker.produce(&stream, "reference");
    let reference = by_id(uninterrupted(&broker, &scratch, "reference")).0;

    let run = settings(&bootstrap, &scratch, "faults");
    broker.produce(&slices[0], "faults");
    let mut service = Service::start(&run);
    service.wait_ready();
    wait_checkpoint_past(&mut service, &run, 0);

    // Broker down: readiness says so while it lasts, and recovers once it is back.
    broker.cluster.broker_down(1).expect("broker down");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reported = None;
    while reported.is_none() && Instant::now() < deadline {
        if let Some((503, body)) = service.get("/readyz")
            && body.contains("broker")
        {
            reported = Some(body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let reported = reported.unwrap_or_else(|| panic!("readyz: {}", service.log_text()));
    std::thread::sleep(Duration::from_secs(2));
    broker.cluster.broker_up(1).expect("broker up");

    // Injected fetch errors while the rest of the input arrives, then produce errors
    // while the service sends what it raises. The input is one burst, written as the
    // contract asks of producers (within `time.partition_idle` of its first record):
    // produced slice by slice by another process, with produce errors delaying some of
    // its partitions, a busy machine can stretch it past that, and records of the
    // partitions written last may then be late — a producer's fault, not this test's
    // subject.
    broker.cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 8],
    );
    let rest = scratch.0.join("rest.jsonl");
    let text: String = slices[1..]
        .iter()
        .map(|slice| std::fs::read_to_string(slice).expect("read slice"))
        .collect();
    std::fs::write(&rest, text).expect("write the rest");
    broker.publish_by_type(&rest, "faults");
    broker.cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 8],
    );
    finish_input(&broker, &run, &mut service);
    // Readiness recovers once the broker answers again.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut ready_again = service.get("/readyz").map(|r| r.0);
    while ready_again != Some(200) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        ready_again = service.get("/readyz").map(|r| r.0);
    }
    assert_eq!(
        ready_again,
        Some(200),
        "ready again: {}",
        service.log_text()
    );
    let log = service.log_text();
    service.terminate();
    assert!(
        log.contains("kafka client error"),
        "the outage is logged: {log}"
    );
    let (faulted, duplicates) = by_id(broker.values("faults.alerts"));
    assert_same_alerts(&faulted, &reference, "through broker faults");
    eprintln!(
        "broker faults: readyz said {reported:?}, then {ready_again:?}; {duplicates} alerts re-sent"
    );
}

#[test]
fn idle_advance_lets_event_time_follow_the_wall_clock() {
    let scratch = Scratch::new("idle");
    let broker = Broker::start(&["idle"]);
    let bootstrap = broker.bootstrap();
    // An API key issued 91 days ago and nothing since: overdue for rotation today.
    let issued = chrono::Utc::now() - chrono::Duration::days(91);
    let at = issued.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let lines = [
        format!(
            r#"{{"id":"i1","type":"identity.registered","time":"{at}","identity":"svc-idle","kind":"service_account"}}"#
        ),
        format!(
            r#"{{"id":"i2","type":"identity.owner_assigned","time":"{at}","identity":"svc-idle","business_owner":"b","technical_custodian":"t"}}"#
        ),
        format!(
            r#"{{"id":"i3","type":"identity.approved","time":"{at}","identity":"svc-idle","approver":"p","scopes":[]}}"#
        ),
        format!(
            r#"{{"id":"c1","type":"credential.issued","time":"{at}","identity":"svc-idle","credential":"k-idle","kind":"api_key"}}"#
        ),
    ];
    let fixture = scratch.0.join("idle.jsonl");
    std::fs::write(&fixture, lines.join("\n") + "\n").expect("fixture");
    broker.produce(&fixture, "idle");

    let mut run = settings(&bootstrap, &scratch, "idle");
    run.env = vec![("NHI_DRIFT_TIME__IDLE_ADVANCE", "1s")];
    let mut service = Service::start(&run);
    service.wait_ready();
    let deadline = Instant::now() + Duration::from_secs(60);
    while broker.count("idle.alerts") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let late = service.late_events();
    service.terminate();
    // Event time follows the wall clock only once the partitions delivered what they hold.
    assert_eq!(
        late,
        Some(0),
        "the records written before the start are not late"
    );
    let alerts = broker.values("idle.alerts");
    let rotation = alerts
        .iter()
        .find(|a| a["rule_id"] == "NHI-ROT-001")
        .unwrap_or_else(|| panic!("no rotation alert without traffic: {alerts:?}"));
    assert_eq!(rotation["credential"], "k-idle");
    let time = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(rotation[field].as_str().expect(field))
            .expect("RFC 3339")
            .timestamp()
    };
    // Overdue since a day ago: judged at the end of the one-minute window in which it
    // became overdue, once idle advance moved event time past it.
    assert_eq!(time("opened_at"), issued.timestamp() + 90 * 86_400);
    assert_eq!(
        time("detected_at"),
        (time("opened_at") / 60 + 1) * 60,
        "{alerts:?}"
    );
}

#[test]
fn an_unreachable_broker_is_named_and_logged_a_bounded_number_of_times() {
    let scratch = Scratch::new("unreachable");
    // Nothing listens on port 1: every connection attempt is refused at once, and
    // librdkafka retries every few hundred milliseconds.
    let run = RunSettings {
        brokers: "127.0.0.1:1",
        prefix: "unreachable",
        state_dir: scratch.0.join("state"),
        log: scratch.0.join("run.log"),
        checkpoint_interval: "1s",
        env: Vec::new(),
        http_host: "127.0.0.1",
    };
    let service = Service::start(&run);
    let outage = Duration::from_secs(12);
    let started = Instant::now();
    let mut reason = None;
    while started.elapsed() < outage {
        if let Some((503, body)) = service.get("/readyz") {
            reason = Some(body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = service.log_text();
    service.terminate();
    let reason = reason.unwrap_or_default();
    assert!(
        reason.starts_with("not ready: broker unreachable: "),
        "/readyz names the broker as the reason: {reason:?}"
    );
    let lines = log.lines().count();
    eprintln!("{lines} log lines in {outage:?} of outage; /readyz: {reason:?}");
    assert!(
        lines <= 25,
        "repeated client errors are rate-limited: {lines} lines\n{log}"
    );
}

/// The service's one-line error when started on the checkpoint directory `state`.
fn refusal(state: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .arg("run")
        .env("NHI_DRIFT_KAFKA__BROKERS", "127.0.0.1:1")
        .env("NHI_DRIFT_CHECKPOINT__DIR", state)
        .env("NHI_DRIFT_HTTP__LISTEN", "127.0.0.1:0")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("an error line: {stderr}"))
        .to_owned()
}

#[test]
fn a_truncated_checkpoint_is_refused_with_each_cause_said_once() {
    let scratch = Scratch::new("truncated");
    let state = scratch.0.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    // A real checkpoint header and the start of its body, as a crash mid-copy leaves it.
    let mut truncated = b"NHIDCKPT".to_vec();
    truncated.extend_from_slice(&nhi_drift::pipeline::state::STATE_VERSION.to_le_bytes());
    truncated.extend_from_slice(&[2, 12, b'n', b'h', b'i']);
    std::fs::write(state.join("checkpoint.bin"), truncated).expect("write");
    let error = refusal(&state);
    assert!(error.contains("checkpoint.bin"), "names the file: {error}");
    assert_eq!(
        error.matches("not a readable checkpoint").count(),
        1,
        "each cause once: {error}"
    );
    assert_eq!(
        error.matches("the file is truncated").count(),
        1,
        "says why once: {error}"
    );
}

#[test]
fn an_older_checkpoint_format_is_refused_with_what_to_do() {
    let scratch = Scratch::new("old-format");
    let state = scratch.0.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::write(
        state.join("checkpoint.json"),
        r#"{"offsets": [], "pipeline": {}}"#,
    )
    .expect("write");
    let error = refusal(&state);
    assert!(error.contains("checkpoint.json"), "names the file: {error}");
    assert!(error.contains("older version"), "says why: {error}");
    assert!(
        error.contains("move the checkpoint directory away"),
        "says what to do: {error}"
    );

    // A binary checkpoint of another format version, likewise.
    let mut other = b"NHIDCKPT".to_vec();
    other.extend_from_slice(&(nhi_drift::pipeline::state::STATE_VERSION + 1).to_le_bytes());
    std::fs::remove_file(state.join("checkpoint.json")).expect("remove");
    std::fs::write(state.join("checkpoint.bin"), other).expect("write");
    let error = refusal(&state);
    assert!(
        error.contains("checkpoint format") && error.contains("another version"),
        "says why: {error}"
    );
}

#[test]
fn input_topics_with_different_partition_counts_are_refused() {
    let scratch = Scratch::new("mismatch");
    let broker = Broker::start(&[]);
    let counts = [("identity", 3), ("credential", 2), ("toolcall", 3)];
    for (topic, partitions) in counts.iter().chain(&[("alerts", 1), ("deadletter", 1)]) {
        broker
            .cluster
            .create_topic(&format!("mismatch.{topic}"), *partitions, 1)
            .expect("topic");
    }
    broker.publish(Path::new("examples/scenario.jsonl"), "mismatch.identity");
    let bootstrap = broker.bootstrap();
    let run = settings(&bootstrap, &scratch, "mismatch");
    let service = Service::start(&run);

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = None;
    while refused.is_none() && Instant::now() < deadline {
        if let Some((503, body)) = service.get("/readyz")
            && body.contains("partition count")
        {
            refused = Some(body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = refused.unwrap_or_else(|| panic!("readyz: {}", service.log_text()));
    let named = "mismatch.identity has 3, mismatch.credential has 2, mismatch.toolcall has 3";
    assert!(
        refused.contains(named),
        "readyz names the counts: {refused}"
    );
    assert!(
        service
            .log_text()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains(named)),
        "the refusal is logged as an error: {}",
        service.log_text()
    );
    // The check comes before the first poll: nothing was read.
    assert_eq!(service.consumed(), Some(0));
    service.terminate();
}

#[test]
fn a_state_topic_with_another_partition_count_is_named_on_readyz() {
    let scratch = Scratch::new("statecount");
    let broker = Broker::start(&[]);
    for (_, topic) in support::topic_env("statecount") {
        broker.cluster.create_topic(&topic, 3, 1).expect("topic");
    }
    broker
        .cluster
        .create_topic("statecount.state", 2, 1)
        .expect("state topic");
    broker
        .cluster
        .create_topic("statecount.progress", 3, 1)
        .expect("progress topic");
    broker.produce(Path::new("examples/scenario.jsonl"), "statecount");
    let bootstrap = broker.bootstrap();
    let run = settings(&bootstrap, &scratch, "statecount");
    let service = Service::start(&run);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut said = None;
    while said.is_none() && Instant::now() < deadline {
        if let Some((503, body)) = service.get("/readyz")
            && body.contains("state topics")
        {
            said = Some(body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let said = said.unwrap_or_else(|| panic!("readyz: {}", service.log_text()));
    assert!(
        said.contains("statecount.state has 2 partitions and the input topics 3"),
        "readyz names the topic and both counts: {said}"
    );
    assert!(
        service
            .log_text()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("statecount.state has 2 partitions")),
        "and the log: {}",
        service.log_text()
    );
    service.terminate();
}

#[test]
fn exactly_once_commits_through_aborted_transactions_and_a_kill() {
    let scratch = Scratch::new("eos");
    let broker = Broker::start(&["reference", "eos"]);
    let bootstrap = broker.bootstrap();
    let (stream, _) = generated(&scratch.0);
    let slices = split(&stream, 3);
    broker.produce(&stream, "reference");
    let reference = by_id(uninterrupted(&broker, &scratch, "reference")).0;

    let mut run = settings(&bootstrap, &scratch, "eos");
    run.env = vec![
        ("NHI_DRIFT_KAFKA__EXACTLY_ONCE", "true"),
        ("NHI_DRIFT_KAFKA__TRANSACTIONAL_ID", "eos-test-1"),
    ];
    broker.produce(&slices[0], "eos");
    let mut service = Service::start(&run);
    service.wait_ready();
    wait_checkpoint_past(&mut service, &run, 0);
    let committed = r#"nhi_drift_transactions_total{outcome="committed"}"#;
    let aborted = r#"nhi_drift_transactions_total{outcome="aborted"}"#;
    assert!(
        service.metric(committed).unwrap_or(0.0) >= 1.0,
        "{}",
        service.log_text()
    );

    // Errors on the transactional requests: ones librdkafka retries (coordinator moved,
    // a concurrent transaction), and a partition the transaction may not write, which
    // leaves it abortable: it is aborted and its records sent again in a new one.
    let e = |code| [code; 2];
    use RDKafkaRespErr::*;
    broker.cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &e(RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE),
    );
    broker.cluster.request_errors(
        RDKafkaApiKey::TxnOffsetCommit,
        &e(RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS),
    );
    broker.cluster.request_errors(
        RDKafkaApiKey::AddPartitionsToTxn,
        &[
            RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        ],
    );
    broker.produce(&slices[1], "eos");
    let deadline = Instant::now() + Duration::from_secs(120);
    while service.metric(aborted).unwrap_or(0.0) < 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let aborts = service.metric(aborted).unwrap_or(0.0);
    assert!(aborts >= 1.0, "an abort is counted: {}", service.log_text());
    let log = service.log_text();
    assert!(log.contains("kafka transaction aborted"), "{log}");
    let at_kill = checkpointed(&run);
    wait_checkpoint_past(&mut service, &run, at_kill);
    // Killed with a transaction open: the next process with the same transactional.id
    // fences it and continues from the last committed state.
    service.kill();
    broker.produce(&slices[2], "eos");
    let service = run_to_end(&broker, &run);
    let committed_after = service.metric(committed).unwrap_or(0.0);
    service.terminate();
    assert!(committed_after >= 1.0);
    let (got, copies) = by_id(broker.values("eos.alerts"));
    assert_same_alerts(
        &got,
        &reference,
        "exactly-once through aborts and a kill -9",
    );
    eprintln!(
        "exactly-once: {aborts} aborted transaction(s) sent again, {copies} copies visible \
         (this broker shows aborted records to every reader; read_committed on a real \
         cluster hides them)"
    );
}
