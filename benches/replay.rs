//! Replay throughput with every rule on, next to a parse-only pass over the same file.
//!
//! `cargo bench --bench replay [-- IDENTITIES DAYS]` (release; `--profile dev` for the test
//! build; defaults 2000 × 30, about one million events). Prints events/s of both passes and
//! their ratio, measured in one run on one input, where the replay's time went, and what a
//! checkpoint of the final state costs.

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
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

    let config = Config::load_with_env(None, Vec::new())?;
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
        let state = pipeline.state()?;
        let pause = taken.elapsed();
        let written = Instant::now();
        let bytes = serde_json::to_vec(&state)?.len();
        let write = written.elapsed();
        println!(
            "checkpoint : {:.1} MiB, state taken in {:.0} ms (pipeline paused), written in {:.0} ms; {} identities, {} credentials tracked",
            bytes as f64 / 1048576.0,
            pause.as_secs_f64() * 1e3,
            write.as_secs_f64() * 1e3,
            pipeline.inventory().identity_count(),
            pipeline.inventory().credential_count(),
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
