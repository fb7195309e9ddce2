//! Helpers for tests that run `nhi-drift run` against a Kafka-protocol broker owned by the
//! test (librdkafka's mock cluster, reached over loopback TCP).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;

pub const PARTITIONS: i32 = 3;

/// The five topics of one service setup, named `<prefix>.identity` … `<prefix>.deadletter`
/// (prefix `nhi` gives the defaults), as `NHI_DRIFT_TOPICS__*` settings.
pub fn topic_env(prefix: &str) -> Vec<(String, String)> {
    ["identity", "credential", "toolcall", "alerts", "deadletter"]
        .iter()
        .map(|t| {
            (
                format!("NHI_DRIFT_TOPICS__{}", t.to_uppercase()),
                format!("{prefix}.{t}"),
            )
        })
        .collect()
}

/// The input topics of a setup.
pub fn inputs(prefix: &str) -> [String; 3] {
    ["identity", "credential", "toolcall"].map(|t| format!("{prefix}.{t}"))
}

/// A broker with the topics of the given setups, owned by the test; its clients are
/// those of [`Kafka`].
pub struct Broker {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    kafka: Kafka,
}

impl Broker {
    pub fn start(prefixes: &[&str]) -> Broker {
        let cluster = MockCluster::new(1).expect("mock cluster");
        for prefix in prefixes {
            for (_, topic) in topic_env(prefix) {
                cluster.create_topic(&topic, PARTITIONS, 1).expect("topic");
            }
            // The state and progress topics of the group the setup's services join
            // (`RunSettings`).
            for topic in ["state", "progress"] {
                cluster
                    .create_topic(&format!("{prefix}.{topic}"), PARTITIONS, 1)
                    .expect("group topic");
            }
        }
        let kafka = Kafka {
            bootstrap: cluster.bootstrap_servers(),
            partitions: PARTITIONS,
        };
        Broker { cluster, kafka }
    }
}

impl std::ops::Deref for Broker {
    type Target = Kafka;

    fn deref(&self) -> &Kafka {
        &self.kafka
    }
}

/// Clients of a broker at `bootstrap` whose topics have `partitions` partitions each
/// (a [`Broker`] of the test, or one in another process).
pub struct Kafka {
    pub bootstrap: String,
    pub partitions: i32,
}

impl Kafka {
    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    /// Publishes a fixture with `nhi-drift produce` to the inputs of setup `prefix`.
    pub fn produce(&self, path: &Path, prefix: &str) {
        let output = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
            .args([
                "produce",
                "--brokers",
                &self.bootstrap(),
                "--topic-from-type",
            ])
            .arg(path)
            .envs(topic_env(prefix))
            .output()
            .expect("run produce");
        assert!(
            output.status.success(),
            "produce failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Publishes every line of `path` to `topic`, keyed by its `identity` and partitioned
    /// as `nhi-drift produce` does, from this process (no process start-up in between), and
    /// waits for the acknowledgements.
    pub fn publish(&self, path: &Path, topic: &str) {
        let text = std::fs::read_to_string(path).expect("read fixture");
        self.publish_lines(text.lines().map(|line| (topic.to_owned(), line)));
    }

    /// Publishes every line of `path` to the input topic of its type in setup `prefix`
    /// (as `nhi-drift produce` does), from this process: a burst written in milliseconds,
    /// however busy the machine is.
    pub fn publish_by_type(&self, path: &Path, prefix: &str) {
        let text = std::fs::read_to_string(path).expect("read fixture");
        let topics = inputs(prefix);
        self.publish_lines(
            text.lines()
                .map(|line| (topics[input_of(line)].clone(), line)),
        );
    }

    fn publish_lines<'a>(&self, lines: impl Iterator<Item = (String, &'a str)>) {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        // Partitioned as `nhi-drift produce` does (the Java clients' partitioner): an
        // identity's events land on the same partition of every topic, its task's.
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("partitioner", nhi_drift::service::kafka::JAVA_PARTITIONER)
            .set("linger.ms", "1")
            .create()
            .expect("producer");
        for (topic, line) in lines.filter(|(_, l)| !l.is_empty()) {
            let key = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v["identity"].as_str().map(str::to_owned));
            let mut record = BaseRecord::to(&topic).payload(line);
            if let Some(key) = &key {
                record = record.key(key.as_str());
            }
            producer.send(record).map_err(|(e, _)| e).expect("send");
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
    }

    /// Every record of `topic` so far, as JSON, with its key.
    pub fn read_all(&self, topic: &str) -> Vec<(Option<String>, Value)> {
        self.read_raw(topic)
            .into_iter()
            .map(|(_, key, payload)| {
                let value = serde_json::from_slice(&payload).expect("record is JSON");
                (key, value)
            })
            .collect()
    }

    /// Every record of `topic` so far, with its partition and key.
    pub fn read_raw(&self, topic: &str) -> Vec<(i32, Option<String>, Vec<u8>)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", "test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        let mut end = 0;
        for p in 0..self.partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("tpl");
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            end += high;
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while (out.len() as i64) < end && Instant::now() < deadline {
            if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(200)) {
                let key = msg.key().map(|k| String::from_utf8_lossy(k).into_owned());
                let payload = msg.payload().unwrap_or_default().to_vec();
                out.push((msg.partition(), key, payload));
            }
        }
        assert_eq!(out.len() as i64, end, "read every record of {topic}");
        out
    }

    /// The end offset of every non-empty input partition of setup `prefix`.
    pub fn input_end_offsets(&self, prefix: &str) -> BTreeMap<(String, i32), i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("consumer");
        let mut out = BTreeMap::new();
        for topic in inputs(prefix) {
            for p in 0..self.partitions {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                if high > 0 {
                    out.insert((topic.clone(), p), high);
                }
            }
        }
        out
    }

    /// Records in `topic` so far (sum of its partitions' end offsets).
    pub fn count(&self, topic: &str) -> i64 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("consumer");
        (0..self.partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks")
                    .1
            })
            .sum()
    }

    /// The alerts (or other JSON records) of `topic`.
    pub fn values(&self, topic: &str) -> Vec<Value> {
        self.read_all(topic).into_iter().map(|(_, v)| v).collect()
    }
}

/// A scratch directory removed at the end (kept when `KEEP_SCRATCH` is set, to read the
/// logs of a failed run).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("nhi-drift-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_SCRATCH").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One `nhi-drift run` child process.
pub struct Service {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

/// Settings of a service run.
pub struct RunSettings<'a> {
    pub brokers: &'a str,
    /// Topic prefix (see [`topic_env`]); also the consumer group.
    pub prefix: &'a str,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    pub checkpoint_interval: &'a str,
    /// More `NHI_DRIFT_*` settings.
    pub env: Vec<(&'a str, &'a str)>,
    /// The address `http.listen` binds (the port is a free one).
    pub http_host: &'a str,
}

impl<'a> RunSettings<'a> {
    /// Setup `prefix` on `brokers`, with its state directory and log under `dir`.
    pub fn in_dir(
        brokers: &'a str,
        dir: &Path,
        prefix: &'a str,
        checkpoint_interval: &'a str,
    ) -> Self {
        RunSettings {
            brokers,
            prefix,
            state_dir: dir.join(format!("state-{prefix}")),
            log: dir.join(format!("{prefix}.log")),
            checkpoint_interval,
            env: Vec::new(),
            http_host: "127.0.0.1",
        }
    }
}

impl Service {
    pub fn start(settings: &RunSettings<'_>) -> Service {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&settings.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
            .arg("run")
            .env("NHI_DRIFT_KAFKA__BROKERS", settings.brokers)
            .env("NHI_DRIFT_KAFKA__GROUP_ID", settings.prefix)
            .env("NHI_DRIFT_CHECKPOINT__DIR", &settings.state_dir)
            .env(
                "NHI_DRIFT_CHECKPOINT__INTERVAL",
                settings.checkpoint_interval,
            )
            .envs(topic_env(settings.prefix))
            .envs(settings.env.iter().copied())
            .env(
                "NHI_DRIFT_HTTP__LISTEN",
                format!("{}:{port}", settings.http_host),
            )
            .env(
                "RUST_LOG",
                std::env::var("SERVICE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nhi-drift run");
        Service {
            child,
            port,
            log: settings.log.clone(),
        }
    }

    /// `(status code, body)` of a GET, or `None` when nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        Some((status, body))
    }

    /// `(status code, headers, body)` of any request, or `None` when nothing answers.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<(u16, String, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).ok()?;
        // The server may answer (413) before reading all of a large body.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, head.to_owned(), body.to_owned()))
    }

    /// The JSON body and status of a `/v1` request without a token.
    pub fn api(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let headers: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("Content-Type", "application/json")]
        };
        let (status, _, text) = self
            .request(method, path, headers, body.as_bytes())
            .unwrap_or_else(|| panic!("no answer to {method} {path}: {}", self.log_text()));
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        (status, value)
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some((200, _)) = self.get("/readyz") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("service exited with {status}: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("service never became ready: {}", self.log_text());
    }

    /// Records this process has consumed (from `/metrics`).
    pub fn consumed(&self) -> Option<i64> {
        let (_, body) = self.get("/metrics")?;
        Some(
            body.lines()
                .filter(|l| l.starts_with("nhi_drift_events_consumed_total{"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<i64>().ok())
                .sum(),
        )
    }

    /// The value of the series `series` (name and labels, as exposed) on `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find(|l| l.split_whitespace().next() == Some(series))?
            .split_whitespace()
            .last()?
            .parse()
            .ok()
    }

    /// Late events this process has counted (from `/metrics`).
    pub fn late_events(&self) -> Option<u64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find(|l| l.starts_with("nhi_drift_events_late_total "))?
            .split_whitespace()
            .last()?
            .parse()
            .ok()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "exit after SIGTERM: {status}: {}",
            self.log_text()
        );
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Next offsets in the checkpoint of `state_dir` (none while it has none or it is being
/// replaced).
pub fn checkpoint_offsets(state_dir: &Path) -> BTreeMap<(String, i32), i64> {
    match nhi_drift::service::checkpoint::load(state_dir) {
        Ok(Some(checkpoint)) => checkpoint.offsets(),
        _ => BTreeMap::new(),
    }
}

/// Whether every task's watermark in the checkpoint is its largest event time minus the
/// default lateness: every partition has caught up and every window it could close is
/// closed.
pub fn watermark_settled(state_dir: &Path) -> bool {
    let Ok(Some(checkpoint)) = nhi_drift::service::checkpoint::load(state_dir) else {
        return false;
    };
    !checkpoint.tasks.is_empty()
        && checkpoint.tasks.iter().all(|task| {
            let clock = &task.pipeline.clock;
            match (clock.max_time(), clock.watermark()) {
                (Some(max), Some(watermark)) => watermark == max - 300_000_000,
                // A task whose partitions hold nothing has nothing to close.
                (None, None) => true,
                _ => false,
            }
        })
}

/// Waits until the checkpoint holds every input record and the watermark has settled.
pub fn wait_checkpointed(
    service: &mut Service,
    state_dir: &Path,
    end: &BTreeMap<(String, i32), i64>,
) {
    let deadline = Instant::now() + Duration::from_secs(240);
    while Instant::now() < deadline {
        if &checkpoint_offsets(state_dir) == end && watermark_settled(state_dir) {
            return;
        }
        if let Ok(Some(status)) = service.child.try_wait() {
            panic!("service exited with {status}: {}", service.log_text());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "checkpoint never reached the end of the input {:?} (at {:?}): {}",
        end,
        checkpoint_offsets(state_dir),
        service.log_text()
    );
}

/// The JSON alerts of `nhi-drift replay PATH --as-of AS_OF`.
pub fn replay(path: &Path, as_of: &str) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .arg("replay")
        .arg(path)
        .args(["--as-of", as_of])
        .output()
        .expect("run replay");
    assert!(
        output.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert JSON"))
        .collect()
}

/// Writes `events` plus a clock event 30 days after them (which closes every window of the
/// real events once consumed, and is itself never evaluated) to `path`; returns the
/// watermark it moves a service to — state is judged at every window end up to it — as
/// RFC 3339: the `--as-of` at which a replay matches.
pub fn with_clock_event(events: &str, path: &Path) -> String {
    let mut last = 0i64;
    for line in events.lines() {
        if let Ok(v) = serde_json::from_str::<Value>(line)
            && let Some(t) = v["time"].as_str()
            && let Ok(t) = chrono::DateTime::parse_from_rfc3339(t)
        {
            last = last.max(t.timestamp());
        }
    }
    let end = (last / 60 + 1) * 60;
    let tick = chrono::DateTime::from_timestamp(end + 30 * 86_400, 0).expect("time");
    let mut text = events.trim_end().to_owned();
    text.push_str(&format!(
        "\n{{\"id\":\"clock-tick\",\"type\":\"task.completed\",\"time\":\"{}\",\"identity\":\"clock\",\"task\":\"tick\"}}\n",
        tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    std::fs::write(path, text).expect("write fixture");
    // The default allowed lateness.
    (tick - chrono::Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Alerts keyed for comparison: (alert_id, status) → the alert.
pub fn by_id(
    alerts: impl IntoIterator<Item = Value>,
) -> (BTreeMap<(String, String), Value>, usize) {
    let mut map = BTreeMap::new();
    let mut duplicates = 0;
    for alert in alerts {
        let key = (
            alert["alert_id"].as_str().unwrap_or_default().to_owned(),
            alert["status"].as_str().unwrap_or_default().to_owned(),
        );
        if let Some(previous) = map.insert(key, alert.clone()) {
            assert_eq!(previous, alert, "a re-sent alert must be identical");
            duplicates += 1;
        }
    }
    (map, duplicates)
}

/// Asserts two alert sets are equal, describing the alerts only one side has.
pub fn assert_same_alerts(
    got: &BTreeMap<(String, String), Value>,
    want: &BTreeMap<(String, String), Value>,
    what: &str,
) {
    let describe = |a: &Value| {
        format!(
            "{} {} {} {} opened {} detected {}",
            a["rule_id"],
            a["status"],
            a["identity"],
            a["alert_id"],
            a["opened_at"],
            a["detected_at"]
        )
    };
    let only_got: Vec<String> = got
        .iter()
        .filter(|(k, _)| !want.contains_key(*k))
        .map(|(_, a)| describe(a))
        .collect();
    let only_want: Vec<String> = want
        .iter()
        .filter(|(k, _)| !got.contains_key(*k))
        .map(|(_, a)| describe(a))
        .collect();
    let differing: Vec<String> = got
        .iter()
        .filter(|(k, a)| want.get(*k).is_some_and(|w| w != *a))
        .map(|(k, a)| format!("{}\n    got  {a}\n    want {}", k.0, want[k]))
        .collect();
    assert!(
        only_got.is_empty() && only_want.is_empty() && differing.is_empty(),
        "{what}: {} alerts vs {} expected\nonly here:\n  {}\nmissing:\n  {}\ndiffering:\n  {}",
        got.len(),
        want.len(),
        only_got.join("\n  "),
        only_want.join("\n  "),
        differing.join("\n  ")
    );
}

/// Splits a `.jsonl` file into `n` consecutive slices `<path>.<i>.jsonl`.
pub fn split(path: &Path, n: usize) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(path).expect("read stream");
    let lines: Vec<&str> = text.lines().collect();
    let per = lines.len().div_ceil(n);
    lines
        .chunks(per)
        .enumerate()
        .map(|(i, chunk)| {
            let slice = path.with_extension(format!("{i}.jsonl"));
            std::fs::write(&slice, chunk.join("\n") + "\n").expect("write slice");
            slice
        })
        .collect()
}

/// Splits a `.jsonl` file by the input topic `nhi-drift produce` sends each line to
/// (identity, credential, tool call; lines without a known type go with the identity
/// topic), keeping the order: `<path>.identity.jsonl`, ….
pub fn split_by_topic(path: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(path).expect("read stream");
    let mut parts = [String::new(), String::new(), String::new()];
    for line in text.lines() {
        let part = &mut parts[input_of(line)];
        part.push_str(line);
        part.push('\n');
    }
    ["identity", "credential", "toolcall"]
        .iter()
        .zip(parts)
        .map(|(name, part)| {
            let out = path.with_extension(format!("{name}.jsonl"));
            std::fs::write(&out, part).expect("write part");
            out
        })
        .collect()
}

/// The input topic (index in [`inputs`]) `nhi-drift produce` sends a line to: identity,
/// credential or tool call by its type; lines without a known type go to identity.
fn input_of(line: &str) -> usize {
    let kind = serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    if kind.starts_with("credential.") {
        1
    } else if kind == "tool.called" || kind == "task.completed" {
        2
    } else {
        0
    }
}

/// Starts a service and waits until it has checkpointed every record of its setup's
/// input topics with a settled watermark; the service keeps running.
pub fn run_to_end(broker: &Kafka, run: &RunSettings<'_>) -> Service {
    let mut service = Service::start(run);
    service.wait_ready();
    finish_input(broker, run, &mut service);
    service
}

/// Waits until `service` has checkpointed every record of its setup's input topics.
pub fn finish_input(broker: &Kafka, run: &RunSettings<'_>, service: &mut Service) {
    wait_checkpointed(
        service,
        &run.state_dir,
        &broker.input_end_offsets(run.prefix),
    );
}

/// A broker with the default topics, the scenario (plus a clock event) produced to it,
/// and a service that has processed all of it and still runs.
pub fn serve_scenario(scratch: &Scratch) -> (Broker, Service) {
    let broker = Broker::start(&["nhi"]);
    let bootstrap = broker.bootstrap();
    let scenario = std::fs::read_to_string("examples/scenario.jsonl").expect("scenario");
    let fixture = scratch.0.join("scenario.jsonl");
    with_clock_event(&scenario, &fixture);
    broker.produce(&fixture, "nhi");
    let run = RunSettings {
        brokers: &bootstrap,
        prefix: "nhi",
        state_dir: scratch.0.join("state"),
        log: scratch.0.join("run.log"),
        checkpoint_interval: "200ms",
        env: Vec::new(),
        http_host: "127.0.0.1",
    };
    let service = run_to_end(&broker, &run);
    (broker, service)
}

/// The metrics the service exports with the default config and the bundled rules.
pub fn exported_metrics() -> nhi_drift::metrics::Metrics {
    let config = nhi_drift::config::Config::load_with_env(None, Vec::new()).expect("config");
    let rules = nhi_drift::engine::rule::load_rules(None).expect("rules");
    let topics = [
        config.topics.identity.clone(),
        config.topics.credential.clone(),
        config.topics.toolcall.clone(),
    ];
    nhi_drift::metrics::Metrics::new(&topics, &rules)
}

/// The alerts (parsed) and stderr of `nhi-drift replay ARGS` with `env` set.
pub fn replay_args(args: &[&str], env: &[(&str, &str)]) -> (Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .envs(env.iter().copied())
        .arg("replay")
        .args(args)
        .output()
        .expect("run nhi-drift");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let alerts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    (alerts, stderr)
}

/// Writes `lines` as `name` in a per-process scratch directory named after `tag`.
pub fn write_lines(tag: &str, name: &str, lines: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nhi-drift-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n")).expect("write");
    path
}

/// `nhi-drift generate` output (identities × days, seed, from 2026-01-01) written in `dir`.
pub fn generated(dir: &Path, identities: u32, days: u32, seed: u64) -> PathBuf {
    let path = dir.join(format!("gen-{identities}-{days}-{seed}.jsonl"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let options = nhi_drift::generate::GenerateOptions {
        identities,
        days,
        seed,
        start: 1_767_225_600,
    };
    nhi_drift::generate::generate(&options, &mut out).expect("generate");
    out.flush().expect("flush");
    path
}

/// The default config, with the future-time check off (fixtures and generated streams may
/// lie ahead of the wall clock).
pub fn test_config() -> nhi_drift::config::Config {
    let mut config = nhi_drift::config::Config::load_with_env(None, Vec::new()).expect("config");
    config.input.max_future = nhi_drift::config::OffOrDuration(None);
    config
}

/// Replays `files` through `pipeline` in-process: the JSON alert lines and the counters.
pub async fn replay_in(
    pipeline: &mut nhi_drift::pipeline::Pipeline,
    config: &nhi_drift::config::Config,
    files: &[PathBuf],
    as_of: Option<i64>,
) -> (Vec<String>, nhi_drift::pipeline::Stats) {
    let mut out = Vec::new();
    let mut sinks = nhi_drift::replay::Sinks {
        format: nhi_drift::alert::format::AlertFormat::Json,
        alerts: &mut out,
        dead_letters: Some(&mut std::io::sink()),
    };
    let decoder = nhi_drift::event::Decoder::from_config(config);
    let summary =
        nhi_drift::replay::replay(pipeline, files, as_of, &decoder, &mut sinks, |_, _| {})
            .await
            .expect("replay");
    let alerts = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect();
    (alerts, summary.stats)
}
