//! `nhi-drift broker` as a process of its own: its address on stdout, `produce` and `run`
//! against it (through the `--listen` relay), records partitioned as the Java clients
//! partition them, and a clean exit on SIGTERM or SIGINT.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use support::{
    Kafka, RunSettings, Scratch, Service, assert_same_alerts, by_id, checkpoint_offsets, free_port,
    inputs, replay, run_to_end, split, topic_env, watermark_settled, with_clock_event,
};

/// A running `nhi-drift broker`.
struct BrokerProcess {
    child: Child,
    /// The address it printed.
    address: String,
    log: PathBuf,
}

impl BrokerProcess {
    /// Starts `nhi-drift broker ARGS` with the topics of setup `prefix`, and reads the
    /// address it prints.
    fn start(args: &[&str], prefix: &str, log: &Path) -> BrokerProcess {
        let stderr = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
            .arg("broker")
            .args(args)
            .envs(topic_env(prefix))
            // The group of the setup's services (`RunSettings`): its state topic.
            .env("NHI_DRIFT_KAFKA__GROUP_ID", prefix)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn nhi-drift broker");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let address = line
            .trim_end()
            .strip_prefix("broker listening on ")
            .unwrap_or_else(|| panic!("no address line, got {line:?}: {text}"))
            .to_owned();
        BrokerProcess {
            child,
            address,
            log: log.to_owned(),
        }
    }

    /// Sends `signal` and waits for the exit.
    fn stop(mut self, signal: &str) -> (ExitStatus, String) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let status = self.child.wait().expect("wait");
        (
            status,
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kafka's `Utils.murmur2` (the Java clients' default partitioner), written from its
/// definition: seed 0x9747b28c, m = 0x5bd1e995, r = 24, little-endian words.
fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = words.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition a Java producer's default partitioner picks for a keyed record:
/// `toPositive(murmur2(key)) % partitions`.
fn java_partition(key: &str, partitions: i32) -> i32 {
    (murmur2(key.as_bytes()) & 0x7fff_ffff) % partitions
}

#[test]
fn murmur2_matches_the_java_clients() {
    // The cases of Kafka's own `UtilsTest.testMurmur2`.
    for (key, hash) in [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        ("abc", 479_470_107),
    ] {
        assert_eq!(murmur2(key.as_bytes()), hash, "{key}");
    }
}

/// Checks that every keyed record on the inputs of `prefix` is on the partition a Java
/// producer would have chosen; returns how many were checked.
fn assert_java_partitioned(kafka: &Kafka, prefix: &str) -> usize {
    let mut checked = 0;
    for topic in inputs(prefix) {
        for (partition, key, _) in kafka.read_raw(&topic) {
            let Some(key) = key else { continue };
            assert_eq!(
                partition,
                java_partition(&key, kafka.partitions),
                "{topic}: record keyed {key:?}"
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn a_standalone_broker_on_a_chosen_address_serves_produce_and_run() {
    let scratch = Scratch::new("broker-listen");
    let listen = format!("127.0.0.1:{}", free_port());
    let broker = BrokerProcess::start(
        &["--listen", &listen, "--partitions", "4"],
        "solo",
        &scratch.0.join("broker.log"),
    );
    assert_eq!(broker.address, listen, "the broker advertises --listen");
    let kafka = Kafka {
        bootstrap: broker.address.clone(),
        partitions: 4,
    };
    let scenario = std::fs::read_to_string("examples/scenario.jsonl").expect("scenario");
    let fixture = scratch.0.join("scenario.jsonl");
    let as_of = with_clock_event(&scenario, &fixture);
    kafka.produce(&fixture, "solo");
    assert!(assert_java_partitioned(&kafka, "solo") > 0);

    let run = RunSettings::in_dir(&kafka.bootstrap, &scratch.0, "solo", "100ms");
    let service = run_to_end(&kafka, &run);
    service.terminate();
    let (got, duplicates) = by_id(kafka.values("solo.alerts"));
    assert_eq!(duplicates, 0, "one uninterrupted run sends each alert once");
    let (want, _) = by_id(replay(&fixture, &as_of));
    assert_same_alerts(&got, &want, "run against the standalone broker vs replay");

    let (status, log) = broker.stop("-TERM");
    assert!(status.success(), "exit after SIGTERM: {status}: {log}");
}

#[test]
fn a_standalone_broker_creates_the_topics_and_produce_keys_as_java_does() {
    let scratch = Scratch::new("broker-default");
    let broker = BrokerProcess::start(&["--partitions", "6"], "six", &scratch.0.join("broker.log"));
    assert!(
        broker.address.starts_with("127.0.0.1:"),
        "a loopback port by default: {}",
        broker.address
    );
    let kafka = Kafka {
        bootstrap: broker.address.clone(),
        partitions: 6,
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .create()
        .expect("consumer");
    for (_, topic) in topic_env("six") {
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("metadata");
        let found = &metadata.topics()[0];
        assert_eq!(found.error(), None, "{topic} exists");
        assert_eq!(found.partitions().len(), 6, "{topic}");
    }
    kafka.produce(Path::new("examples/scenario.jsonl"), "six");
    assert!(assert_java_partitioned(&kafka, "six") > 0);

    let (status, log) = broker.stop("-INT");
    assert!(status.success(), "exit after SIGINT: {status}: {log}");
}

#[test]
fn a_chosen_address_must_be_one_clients_can_reach() {
    for (listen, says) in [
        ("0.0.0.0:0", "unspecified"),
        ("localhost", "expected HOST:PORT"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
            .args(["broker", "--listen", listen])
            .output()
            .expect("run broker");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{listen}: {stderr}");
        assert!(stderr.contains(says), "{listen}: {stderr}");
        assert!(output.stdout.is_empty(), "{listen}: no address printed");
    }
}

/// The union (largest next offset per partition) of the checkpoints in `dirs`.
fn checkpointed(dirs: &[PathBuf]) -> BTreeMap<(String, i32), i64> {
    let mut union = BTreeMap::new();
    for dir in dirs {
        for (key, next) in checkpoint_offsets(dir) {
            let at = union.entry(key).or_insert(next);
            *at = (*at).max(next);
        }
    }
    union
}

/// Waits until the instances in `dirs` together have checkpointed `end`, each with a
/// settled watermark.
fn wait_all_checkpointed(
    services: &mut [Service],
    dirs: &[PathBuf],
    end: &BTreeMap<(String, i32), i64>,
) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if &checkpointed(dirs) == end && dirs.iter().all(|d| watermark_settled(d)) {
            return;
        }
        for service in services.iter_mut() {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("an instance exited with {status}: {}", service.log_text());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs: Vec<String> = services.iter().map(Service::log_text).collect();
    panic!(
        "the instances never checkpointed the end of the input {end:?} (at {:?}): {}",
        checkpointed(dirs),
        logs.join("\n----\n")
    );
}

/// Three instances in one group on a standalone broker with 6 partitions per input topic,
/// the input produced in two halves, instance 0 stopped with `signal` between them, a
/// fourth instance started later. Returns the alerts on the alert topic by
/// (`alert_id`, `status`), the copies among them, and the replay's alerts.
fn failover(prefix: &str, signal: &str) -> (Alerts, usize, Alerts) {
    let scratch = Scratch::new(&format!("instances-{prefix}"));
    let broker = BrokerProcess::start(
        &["--partitions", "6"],
        prefix,
        &scratch.0.join("broker.log"),
    );
    let kafka = Kafka {
        bootstrap: broker.address.clone(),
        partitions: 6,
    };
    let stream = scenario_copies(12);
    let fixture = scratch.0.join("stream.jsonl");
    let as_of = with_clock_event(&stream, &fixture);
    let halves = split(&fixture, 2);

    let runs: Vec<RunSettings<'_>> = (0..4)
        .map(|i| {
            let dir = scratch.0.join(format!("i{i}"));
            std::fs::create_dir_all(&dir).expect("instance dir");
            RunSettings::in_dir(&kafka.bootstrap, &dir, prefix, "300ms")
        })
        .collect();
    let dirs: Vec<PathBuf> = runs.iter().map(|r| r.state_dir.clone()).collect();
    let mut services: Vec<Service> = runs[..3].iter().map(Service::start).collect();
    kafka.produce(&halves[0], prefix);
    let end = kafka.input_end_offsets(prefix);
    wait_all_checkpointed(&mut services, &dirs[..3], &end);

    let first = services.remove(0);
    match signal {
        "-KILL" => first.kill(),
        _ => first.terminate(),
    }
    kafka.produce(&halves[1], prefix);
    std::thread::sleep(Duration::from_secs(2));
    services.push(Service::start(&runs[3]));
    let end = kafka.input_end_offsets(prefix);
    wait_all_checkpointed(&mut services, &dirs[1..], &end);
    for service in services {
        service.terminate();
    }
    let (got, copies) = by_id(kafka.values(&format!("{prefix}.alerts")));
    let (want, _) = by_id(replay(&fixture, &as_of));
    let (status, log) = broker.stop("-TERM");
    assert!(status.success(), "broker exit: {status}: {log}");
    (got, copies, want)
}

type Alerts = BTreeMap<(String, String), serde_json::Value>;

/// The sample scenario `n` times over, each copy with its own identities, credentials,
/// tasks and sessions (so on partitions of their own), in time order; the departures and
/// offboardings, which concern every copy, once.
fn scenario_copies(n: usize) -> String {
    let text = std::fs::read_to_string("examples/scenario.jsonl").expect("scenario");
    let mut events: Vec<serde_json::Value> = Vec::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if matches!(
            event["type"].as_str(),
            Some("principal.departed" | "vendor.offboarded")
        ) {
            events.push(event);
            continue;
        }
        for k in 0..n {
            let mut copy = event.clone();
            for field in [
                "id",
                "identity",
                "credential",
                "new_credential",
                "task",
                "session",
                "token",
            ] {
                if let Some(value) = copy[field].as_str() {
                    copy[field] = format!("{value}-{k}").into();
                }
            }
            events.push(copy);
        }
    }
    // RFC 3339 UTC times of one shape sort as text; the sort is stable.
    events.sort_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()));
    events.iter().map(|e| format!("{e}\n")).collect()
}

/// The partitions (of 6) of the identities with an alert of `rule`.
fn partitions_with(alerts: &Alerts, rule: &str) -> BTreeSet<i32> {
    alerts
        .values()
        .filter(|a| a["rule_id"] == rule)
        .filter_map(|a| a["identity"].as_str())
        .map(|identity| java_partition(identity, 6))
        .collect()
}

#[test]
fn instances_sharing_a_group_give_one_instances_alerts_across_a_kill() {
    let (got, copies, want) = failover("multikill", "-KILL");
    eprintln!(
        "kill -9 between the halves: {} alerts, {copies} copies sent again by the new owners",
        got.len()
    );
    assert_same_alerts(
        &got,
        &want,
        "three instances, one killed, a fourth later vs replay",
    );
    // Departures and offboardings are all keyed by one identity, so on one partition;
    // their alerts fall on identities everywhere.
    for rule in ["NHI-ORPH-001", "NHI-ORPH-002"] {
        let spread = partitions_with(&got, rule);
        assert!(spread.len() > 1, "{rule} on partitions {spread:?}");
    }
}

#[test]
fn instances_sharing_a_group_give_one_instances_alerts_across_a_graceful_stop() {
    let (got, copies, want) = failover("multiterm", "-TERM");
    eprintln!(
        "SIGTERM between the halves: {} alerts, {copies} copies",
        got.len()
    );
    assert_same_alerts(
        &got,
        &want,
        "three instances, one stopped, a fourth later vs replay",
    );
    assert_eq!(
        copies, 0,
        "a stopped instance hands its tasks over with nothing sent twice"
    );
}
