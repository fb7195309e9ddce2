//! Replay throughput with every rule on, next to a parse-only pass over the same file.
//!
//! `cargo bench --bench replay [-- IDENTITIES DAYS]` (release; `--profile dev` for the test
//! build; defaults 2000 × 30, about one million events). Prints events/s of both passes and
//! their ratio, measured in one run on one input, where the replay's time went, and what a
//! checkpoint of the final state costs.
//!
//! Settings are the defaults, overridden by `NHI_DRIFT_<SECTION>__<KEY>` environment
//! variables as in the service (e.g. `NHI_DRIFT_INPUT__BATCH_ROWS=50000`).
//!
//! `cargo bench --bench replay -- memory [CREDENTIALS]` (default 1,000,000) measures memory
//! per tracked credential: two child processes replay a stream holding CREDENTIALS active
//! credentials and one holding a tenth of them; the difference of their peak RSS over the
//! difference in credentials is the cost of one credential, everything included (its
//! identity's share, inventory, timers, pending findings, allocator overhead).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use nhi_drift::alert::format::AlertFormat;
use nhi_drift::config::Config;
use nhi_drift::engine::rule::load_rules;
use nhi_drift::event::Decoder;
use nhi_drift::generate::{GenerateOptions, generate};
use nhi_drift::pipeline::{Options, Pipeline};
use nhi_drift::replay::{Sinks, replay};
use nhi_drift::service::checkpoint;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Ok(path) = std::env::var(MEMORY_CHILD) {
        return memory_child(&PathBuf::from(path));
    }
    if args.first().map(String::as_str) == Some("memory") {
        let credentials = args
            .get(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1_000_000);
        return memory(credentials);
    }
    let identities = args.first().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let days = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    let path = std::env::temp_dir().join(format!("nhi-drift-bench-{identities}-{days}.jsonl"));
    if !path.exists() {
        let mut out = BufWriter::new(std::fs::File::create(&path)?);
        let options = GenerateOptions {
            identities,
            days,
            seed: 42,
            start: 1_767_225_600,
        };
        generate(&options, &mut out)?;
        out.flush()?;
    }
    let bytes = std::fs::metadata(&path)?.len();

    let config = Config::load_with_env(None, settings())?;
    let (parse_events, parse_secs) = parse_only(&path, config.input.max_event_bytes)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (summary, rules) = runtime.block_on(async {
        let rules = load_rules(None)?;
        let mut pipeline =
            Pipeline::new(Options::from_config(&config), rules, &config.rule_params).await?;
        let mut alerts = std::io::sink();
        let mut dead = std::io::sink();
        let mut sinks = Sinks {
            format: AlertFormat::Json,
            alerts: &mut alerts,
            dead_letters: Some(&mut dead),
        };
        let summary = replay(
            &mut pipeline,
            std::slice::from_ref(&path),
            None,
            &Decoder::from_config(&config),
            &mut sinks,
            |_, _| {},
        )
        .await?;
        // What a checkpoint of the final state costs: taking the state (the pipeline
        // pauses for this) and writing it as the service does.
        let taken = Instant::now();
        let encoded = checkpoint::encode(&[checkpoint::TaskView {
            partition: 0,
            generation: 1,
            offsets: Vec::new(),
            directory: Vec::new(),
            pipeline: pipeline.state()?,
        }])?;
        let pause = taken.elapsed();
        // What a new owner does with it (besides fetching it from the state topic):
        // decode the task as the state topic holds it and restore a pipeline from it.
        let task = checkpoint::encode_task(&checkpoint::TaskView {
            partition: 0,
            generation: 1,
            offsets: Vec::new(),
            directory: Vec::new(),
            pipeline: pipeline.state()?,
        })?;
        let restoring = Instant::now();
        let decoded = checkpoint::decode_task(std::path::Path::new("bench"), &task)?;
        let mut restored = Pipeline::new(
            Options::from_config(&config),
            pipeline.rules().to_vec(),
            &config.rule_params,
        )
        .await?;
        restored.restore(decoded.pipeline)?;
        let restore = restoring.elapsed();
        let dir = std::env::temp_dir().join("nhi-drift-bench-checkpoint");
        let written = Instant::now();
        let bytes = checkpoint::save(&dir, &encoded)?;
        let write = written.elapsed();
        println!(
            "checkpoint : {:.1} MiB, encoded in {:.0} ms (pipeline paused), written and synced in {:.0} ms (beside the pipeline); {} identities, {} credentials tracked",
            bytes as f64 / 1048576.0,
            pause.as_secs_f64() * 1e3,
            write.as_secs_f64() * 1e3,
            pipeline.inventory().identity_count(),
            pipeline.inventory().credential_count(),
        );
        println!(
            "restore    : {:.0} ms to decode the task's state ({:.1} MiB, as the state topic holds it) and restore a pipeline from it; {} credentials restored",
            restore.as_secs_f64() * 1e3,
            task.len() as f64 / 1048576.0,
            restored.inventory().credential_count(),
        );
        Ok::<_, Box<dyn std::error::Error>>((summary, pipeline.rules().to_vec()))
    })?;
    let replay_secs = summary.elapsed.as_secs_f64();
    let parse_rate = parse_events as f64 / parse_secs;
    let replay_rate = summary.stats.read as f64 / replay_secs;
    println!(
        "input: {} ({} events, {:.1} MiB)",
        path.display(),
        parse_events,
        bytes as f64 / 1048576.0
    );
    println!("parse-only : {parse_rate:>12.0} events/s  ({parse_secs:.2} s)");
    println!(
        "replay     : {replay_rate:>12.0} events/s  ({replay_secs:.2} s, all {} rules)",
        rules.len()
    );
    println!("ratio      : {:.2}x parse-only", replay_rate / parse_rate);
    let sql: f64 = summary
        .stats
        .rule_time
        .values()
        .map(|d| d.as_secs_f64())
        .sum();
    println!(
        "replay detail: {} evaluations, {} identity snapshots ({} rebuilt), {} activity changes judged later, {} identities forgotten, {} alerts, {:.2} s in rule queries",
        summary.stats.evaluations,
        summary.stats.snapshots,
        summary.stats.repaired,
        summary.stats.deferred,
        summary.stats.forgotten,
        summary.stats.alerts_total(),
        sql
    );
    let mut per_rule: Vec<_> = summary.stats.rule_time.iter().collect();
    per_rule.sort_by(|a, b| b.1.cmp(a.1));
    for (rule, took) in per_rule.iter().take(5) {
        println!("  {rule:<14} {:.3} s", took.as_secs_f64());
    }
    Ok(())
}

/// Reads every line and decodes it into an event, nothing more.
fn parse_only(path: &PathBuf, max: usize) -> std::io::Result<(u64, f64)> {
    let decoder = Decoder::new(max);
    let started = Instant::now();
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut line = Vec::with_capacity(1024);
    let (mut ok, mut total) = (0u64, 0u64);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        total += 1;
        let record = line.strip_suffix(b"\n").unwrap_or(&line);
        if decoder.decode(record).is_ok() {
            ok += 1;
        }
    }
    assert!(ok > 0);
    Ok((total, started.elapsed().as_secs_f64()))
}

/// The environment's `NHI_DRIFT_*` settings, but for the bench's own variable.
fn settings() -> impl Iterator<Item = (String, String)> {
    std::env::vars().filter(|(key, _)| key != MEMORY_CHILD)
}

/// Set in a memory child: the stream it replays.
const MEMORY_CHILD: &str = "NHI_DRIFT_BENCH_MEMORY_CHILD";

/// Credentials per identity in the memory streams.
const PER_IDENTITY: u64 = 4;

/// Peak RSS per credential from two child replays, `credentials` and a tenth of them.
fn memory(credentials: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut runs = Vec::new();
    for n in [credentials / 10, credentials] {
        let path = std::env::temp_dir().join(format!("nhi-drift-bench-memory-{n}.jsonl"));
        if !path.exists() {
            write_memory_stream(&path, n)?;
        }
        let output = std::process::Command::new(std::env::current_exe()?)
            .env(MEMORY_CHILD, &path)
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "memory child failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let line = String::from_utf8(output.stdout)?;
        let mut fields = line.split_whitespace().map(|f| f.parse::<u64>());
        let (Some(Ok(peak_kib)), Some(Ok(tracked)), Some(Ok(secs_ms))) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("unexpected child output: {line:?}").into());
        };
        println!(
            "memory run : {n:>9} credentials issued, {tracked:>9} tracked, peak RSS {:>8.1} MiB, replay {:.1} s",
            peak_kib as f64 / 1024.0,
            secs_ms as f64 / 1e3
        );
        runs.push((peak_kib * 1024, tracked));
    }
    let (small, large) = (runs[0], runs[1]);
    let per = (large.0 as f64 - small.0 as f64) / (large.1 as f64 - small.1 as f64);
    println!("per credential: {per:.0} bytes of peak RSS (target: at most 256)");
    Ok(())
}

/// One identity per [`PER_IDENTITY`] credentials, registered, owned and approved, each
/// credential issued and used once within a day: everything stays active.
fn write_memory_stream(path: &PathBuf, credentials: u64) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let identities = credentials.div_ceil(PER_IDENTITY);
    let day: u64 = 86_400;
    let start: u64 = 1_767_225_600;
    let time =
        |offset: u64| nhi_drift::event::time::format_rfc3339((start + offset) as i64 * 1_000_000);
    // Spread the identities over the first half of the day, their uses over the second.
    let step = |i: u64| i * (day / 2) / identities.max(1);
    for i in 0..identities {
        let t = step(i);
        let id = format!("sa-mem-{i:07}");
        writeln!(
            out,
            r#"{{"id":"m-{i}-r","type":"identity.registered","time":"{}","source":"bench","identity":"{id}","kind":"service_account","tier":"tool_executing","name":"{id}"}}"#,
            time(t)
        )?;
        writeln!(
            out,
            r#"{{"id":"m-{i}-o","type":"identity.owner_assigned","time":"{}","source":"bench","identity":"{id}","business_owner":"owner-{}@corp.example","technical_custodian":"custodian-{}@corp.example"}}"#,
            time(t),
            i % 97,
            i % 89
        )?;
        writeln!(
            out,
            r#"{{"id":"m-{i}-a","type":"identity.approved","time":"{}","source":"bench","identity":"{id}","approver":"approver@corp.example","scopes":["db:read","logs:write"]}}"#,
            time(t)
        )?;
        for c in 0..PER_IDENTITY {
            writeln!(
                out,
                r#"{{"id":"m-{i}-i{c}","type":"credential.issued","time":"{}","source":"bench","identity":"{id}","credential":"key-{i:07}-{c}","kind":"api_key","scopes":["db:read"]}}"#,
                time(t)
            )?;
        }
    }
    for i in 0..identities {
        let t = day / 2 + step(i);
        let id = format!("sa-mem-{i:07}");
        for c in 0..PER_IDENTITY {
            writeln!(
                out,
                r#"{{"id":"m-{i}-u{c}","type":"credential.used","time":"{}","source":"bench","identity":"{id}","credential":"key-{i:07}-{c}","workload":"bench/{id}","environment":"prod"}}"#,
                time(t)
            )?;
        }
    }
    out.flush()
}

/// A memory child: replays `path` and prints its peak RSS (KiB), the credentials tracked
/// and the replay time (ms).
fn memory_child(path: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load_with_env(None, settings())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tracked, elapsed) = runtime.block_on(async {
        let rules = load_rules(None)?;
        let mut pipeline =
            Pipeline::new(Options::from_config(&config), rules, &config.rule_params).await?;
        let (mut alerts, mut dead) = (std::io::sink(), std::io::sink());
        let mut sinks = Sinks {
            format: AlertFormat::Json,
            alerts: &mut alerts,
            dead_letters: Some(&mut dead),
        };
        let summary = replay(
            &mut pipeline,
            std::slice::from_ref(path),
            None,
            &Decoder::from_config(&config),
            &mut sinks,
            |_, _| {},
        )
        .await?;
        Ok::<_, Box<dyn std::error::Error>>((
            pipeline.inventory().credential_count(),
            summary.elapsed,
        ))
    })?;
    let status = std::fs::read_to_string("/proc/self/status")?;
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmHWM in /proc/self/status")?;
    println!("{peak_kib} {tracked} {}", elapsed.as_millis());
    Ok(())
}
