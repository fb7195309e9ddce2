//! Kafka consumption throughput: `nhi-drift run` reading a generated stream from the mock
//! cluster, next to `kcat -C` (Debian package `kcat`) reading the same topics to
//! /dev/null, in one run on one broker.
//!
//! `cargo bench --profile dev --bench kafka [-- IDENTITIES DAYS]` (defaults 2000 × 30,
//! about one million events). Prints records/s of kcat and of the service — records
//! consumed (first to last record polled) and end to end (until the checkpoint holds every
//! record, i.e. every alert is acknowledged) — and their ratios.
//!
//! `cargo bench --profile dev --bench kafka -- instances [IDENTITIES DAYS]` instead runs
//! the service as one process and then as two processes in one consumer group (each
//! setup with a group of its own, over the same topics) and prints end-to-end records/s
//! of each and their ratio (kcat is not needed).

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;

const BIN: &str = env!("CARGO_BIN_EXE_nhi-drift");
const INPUTS: [&str; 3] = ["nhi.identity", "nhi.credential", "nhi.toolcall"];
/// The mock cluster keeps at most 100 000 records or 5 MiB per partition and drops older
/// ones; 48 partitions per topic keep the whole stream.
const PARTITIONS: i32 = 48;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let instances = args.first().is_some_and(|a| a == "instances");
    if instances {
        args.remove(0);
    }
    let identities: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let days: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    if !instances && Command::new("kcat").arg("-V").output().is_err() {
        return Err("kcat not found: apt-get install kcat".into());
    }
    let path = std::env::temp_dir().join(format!("nhi-drift-bench-{identities}-{days}.jsonl"));
    if !path.exists() {
        let status = Command::new(BIN)
            .args(["generate", "--identities", &identities.to_string()])
            .args(["--days", &days.to_string(), "--seed", "42", "--out"])
            .arg(&path)
            .status()?;
        if !status.success() {
            return Err("generate failed".into());
        }
    }

    let cluster = MockCluster::new(1)?;
    for topic in INPUTS.iter().chain(&["nhi.alerts", "nhi.deadletter"]) {
        cluster.create_topic(topic, PARTITIONS, 1)?;
    }
    for group in ["nhi-drift", "bench-one", "bench-two"] {
        for topic in ["state", "progress"] {
            cluster.create_topic(&format!("{group}.{topic}"), PARTITIONS, 1)?;
        }
    }
    let brokers = cluster.bootstrap_servers();
    let started = Instant::now();
    let status = Command::new(BIN)
        .args(["produce", "--brokers", &brokers])
        .arg(&path)
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        return Err("produce failed".into());
    }
    let produce_secs = started.elapsed().as_secs_f64();
    let total = end_offsets(&brokers)?;
    println!(
        "input: {} ({total} records), produced in {produce_secs:.2} s",
        path.display()
    );

    if instances {
        let rate = |secs: f64| total as f64 / secs;
        let (_, one) = service(&brokers, total, "bench-one", 1)?;
        let (_, two) = service(&brokers, total, "bench-two", 2)?;
        println!(
            "1 instance,  end to end:      {:>10.0} records/s ({one:.2} s)",
            rate(one)
        );
        println!(
            "2 instances, end to end:      {:>10.0} records/s ({two:.2} s)  ratio {:.2}x",
            rate(two),
            one / two
        );
        return Ok(());
    }

    // kcat, one topic after another, and the three at once; the faster is the reference.
    let started = Instant::now();
    for topic in INPUTS {
        kcat(&brokers, &[topic])?;
    }
    let kcat_serial = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let children: Vec<_> = INPUTS
        .iter()
        .map(|t| kcat_spawn(&brokers, t))
        .collect::<Result<_, _>>()?;
    for mut child in children {
        child.wait()?;
    }
    let kcat_parallel = started.elapsed().as_secs_f64();
    let kcat_secs = kcat_serial.min(kcat_parallel);

    let (consumed_secs, end_to_end_secs) = service(&brokers, total, "nhi-drift", 1)?;

    let rate = |secs: f64| total as f64 / secs;
    println!(
        "kcat -C to /dev/null:         {:>10.0} records/s ({kcat_secs:.2} s; one topic at a time {kcat_serial:.2} s, three at once {kcat_parallel:.2} s)",
        rate(kcat_secs)
    );
    println!(
        "nhi-drift run, consumed:      {:>10.0} records/s ({consumed_secs:.2} s)  ratio {:.2}x",
        rate(consumed_secs),
        kcat_secs / consumed_secs
    );
    println!(
        "nhi-drift run, end to end:    {:>10.0} records/s ({end_to_end_secs:.2} s)  ratio {:.2}x",
        rate(end_to_end_secs),
        kcat_secs / end_to_end_secs
    );
    Ok(())
}

fn kcat_spawn(brokers: &str, topic: &str) -> std::io::Result<std::process::Child> {
    Command::new("kcat")
        .args([
            "-C",
            "-b",
            brokers,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn kcat(brokers: &str, topics: &[&str]) -> std::io::Result<()> {
    for topic in topics {
        kcat_spawn(brokers, topic)?.wait()?;
    }
    Ok(())
}

fn end_offsets(brokers: &str) -> Result<i64, Box<dyn std::error::Error>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let mut total = 0;
    for topic in INPUTS {
        for p in 0..PARTITIONS {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            if low > 0 {
                return Err(
                    format!("{topic}/{p} dropped {low} records: use more partitions").into(),
                );
            }
            total += high;
        }
    }
    Ok(total)
}

/// Runs `instances` processes of the service in consumer group `group` until their
/// checkpoints hold every record; returns (seconds from the first to the last record
/// consumed, seconds from the first record to that checkpoint).
fn service(
    brokers: &str,
    total: i64,
    group: &str,
    instances: usize,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let mut children = Vec::new();
    for i in 0..instances {
        let dir = std::env::temp_dir().join(format!(
            "nhi-drift-bench-state-{}-{group}-{i}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(BIN)
            .arg("run")
            .env("NHI_DRIFT_KAFKA__BROKERS", brokers)
            .env("NHI_DRIFT_KAFKA__GROUP_ID", group)
            .env("NHI_DRIFT_CHECKPOINT__DIR", &dir)
            .env("NHI_DRIFT_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(
                std::env::temp_dir().join(format!("nhi-drift-bench-kafka-{group}-{i}.log")),
            )?)
            .spawn()?;
        children.push((child, dir, port));
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    let (mut first, mut consumed) = (None, None);
    let result = loop {
        if Instant::now() > deadline {
            break Err("the service did not finish in 30 min".into());
        }
        let n: i64 = children
            .iter()
            .map(|(_, _, port)| consumed_records(*port).unwrap_or(0))
            .sum();
        if n > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if n >= total && consumed.is_none() {
            consumed = Some(Instant::now());
        }
        // A task that moved may still be in its old owner's file: the furthest offset of
        // each partition counts.
        let mut furthest = std::collections::BTreeMap::new();
        for (_, dir, _) in &children {
            for (partition, next) in checkpointed(dir) {
                let at = furthest.entry(partition).or_insert(0);
                *at = next.max(*at);
            }
        }
        let held: i64 = furthest.values().sum();
        if let (Some(f), Some(c)) = (first, consumed)
            && held >= total
        {
            break Ok((c.duration_since(f).as_secs_f64(), f.elapsed().as_secs_f64()));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    for (mut child, dir, _) in children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn consumed_records(port: u16) -> Option<i64> {
    use std::io::Write;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("nhi_drift_events_consumed_total{"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<i64>().ok())
            .sum(),
    )
}

fn checkpointed(dir: &Path) -> Vec<((String, i32), i64)> {
    match nhi_drift::service::checkpoint::load(dir) {
        Ok(Some(checkpoint)) => checkpoint.offsets().into_iter().collect(),
        _ => Vec::new(),
    }
}
