//! Request-time decisions (`POST /v1/decide`) against a loaded state: decisions per
//! second and latency percentiles, in-process (prepare on the pipeline's state, then the
//! window rules' SQL) and over HTTP (the service's `/v1` handler and pipeline channel on
//! loopback, one keep-alive connection per client).
//!
//! `cargo bench --bench decide [-- IDENTITIES DAYS]` (release; `--profile dev` for the
//! test build; defaults 2000 × 30, about one million events, the stream of
//! `benches/replay.rs`). The requests are the stream's own last tool calls, asked again
//! against the final state.

use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use nhi_drift::alert::format::AlertFormat;
use nhi_drift::ask::answer::{Answerer, Query};
use nhi_drift::ask::decide::{DecideRequest, Decider, prepare};
use nhi_drift::config::Config;
use nhi_drift::engine::rule::load_rules;
use nhi_drift::event::Decoder;
use nhi_drift::generate::{GenerateOptions, generate};
use nhi_drift::pipeline::{Options, Pipeline};
use nhi_drift::replay::{Sinks, replay};
use nhi_drift::service::access::Access;
use nhi_drift::service::api::Api;
use nhi_drift::service::health::Health;
use nhi_drift::service::http;

/// Decisions timed per mode.
const DECISIONS: usize = 10_000;
/// Distinct requests cycled through.
const REQUESTS: usize = 2_000;
/// Concurrent HTTP clients in the throughput pass.
const CLIENTS: usize = 4;

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
    let requests = last_tool_calls(&path, REQUESTS)?;
    let config = Config::load_with_env(None, std::env::vars())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let rules = load_rules(None)?;
        let mut pipeline = Pipeline::new(
            Options::from_config(&config),
            rules.clone(),
            &config.rule_params,
        )
        .await?;
        let decoder = Decoder::from_config(&config);
        let loaded = Instant::now();
        let mut alerts = std::io::sink();
        let mut sinks = Sinks {
            format: AlertFormat::Json,
            alerts: &mut alerts,
            dead_letters: Some(&mut std::io::sink()),
        };
        let summary = replay(
            &mut pipeline,
            std::slice::from_ref(&path),
            None,
            &decoder,
            &mut sinks,
            |_, _| {},
        )
        .await?;
        println!(
            "state: {} events replayed in {:.1} s; {} identities, {} credentials, {} requests",
            summary.stats.read,
            loaded.elapsed().as_secs_f64(),
            pipeline.inventory().identity_count(),
            pipeline.inventory().credential_count(),
            requests.len(),
        );
        let decider =
            Arc::new(Decider::new(&rules, &config.rule_params, config.api.decide.clone()).await?);

        // The part on the pipeline's task alone: the one-row tables and the findings.
        let mut took = Vec::with_capacity(DECISIONS);
        let started = Instant::now();
        for i in 0..DECISIONS {
            let t = Instant::now();
            let _ =
                std::hint::black_box(prepare(&pipeline, &requests[i % requests.len()], &decoder));
            took.push(t.elapsed());
        }
        report("prepare only", started.elapsed(), &mut took);

        // The identity view, also answered on the pipeline's task.
        let answerer = Answerer::new(config.api.findings_kept, decoder.clone());
        let mut took = Vec::with_capacity(requests.len());
        let started = Instant::now();
        for request in &requests {
            let t = Instant::now();
            let _ = std::hint::black_box(answerer.identity(&[&pipeline], &request.identity));
            took.push(t.elapsed());
        }
        report("identity view", started.elapsed(), &mut took);

        // In-process.
        let mut reasons = std::collections::BTreeMap::<String, usize>::new();
        let mut verdicts = std::collections::BTreeMap::<&str, usize>::new();
        let mut took = Vec::with_capacity(DECISIONS);
        let started = Instant::now();
        for i in 0..DECISIONS {
            let request = &requests[i % requests.len()];
            let t = Instant::now();
            let prepared = prepare(&pipeline, request, &decoder);
            let verdict = match prepared {
                Ok(p) => {
                    let d = decider.decide(p).await?;
                    for r in &d.reasons {
                        *reasons.entry(r.rule_id.clone()).or_default() += 1;
                    }
                    d.decision.as_str()
                }
                Err(_) => "refused",
            };
            took.push(t.elapsed());
            *verdicts.entry(verdict).or_default() += 1;
        }
        report("in-process", started.elapsed(), &mut took);
        println!("  answers: {verdicts:?}\n  reasons: {reasons:?}");

        // Over HTTP: the service's handler, the pipeline answering on this task.
        let (queries, mut asked) = mpsc::channel::<Query>(64);
        let api = {
            let decider = Arc::clone(&decider);
            let rule_ids: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
            let max_body = config.api.max_body_bytes;
            Box::new(move |addr| {
                Some(Api {
                    queries,
                    decider,
                    access: Access::new(addr, ""),
                    max_body,
                    max_page: 100,
                    rule_ids,
                })
            })
        };
        let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let addr = http::serve(
            "127.0.0.1:0",
            Arc::new(Health::default()),
            Arc::new(String::new),
            api,
            async move {
                let _ = stopped.await;
            },
        )
        .await?;
        let bodies: Arc<Vec<String>> = Arc::new(
            requests
                .iter()
                .map(|r| serde_json::to_string(r).unwrap_or_default())
                .collect(),
        );
        for clients in [1, CLIENTS] {
            let per_client = DECISIONS / clients;
            let mut handles = Vec::new();
            let started = Instant::now();
            for c in 0..clients {
                let bodies = Arc::clone(&bodies);
                handles.push(tokio::spawn(async move {
                    client(addr, &bodies, c * 7919, per_client).await
                }));
            }
            let mut all = tokio::spawn(async move {
                let mut took = Vec::new();
                for h in handles {
                    took.extend(h.await.map_err(|e| e.to_string())??);
                }
                Ok::<_, String>(took)
            });
            let mut took = loop {
                tokio::select! {
                    Some(query) = asked.recv() => answerer.answer(&[&pipeline], query),
                    done = &mut all => break done??,
                }
            };
            report(
                &format!("http x{clients} client(s)"),
                started.elapsed(),
                &mut took,
            );
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// The stream's last `n` tool calls, as decision requests.
fn last_tool_calls(
    path: &std::path::Path,
    n: usize,
) -> Result<Vec<DecideRequest>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for line in text.lines().rev() {
        if !line.contains("\"tool.called\"") {
            continue;
        }
        let e: Value = serde_json::from_str(line)?;
        let text = |f: &str| e[f].as_str().map(str::to_owned);
        out.push(DecideRequest {
            identity: text("identity").unwrap_or_default(),
            tool: text("tool"),
            credential: text("credential"),
            scopes: e["scopes"].as_array().map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            }),
            sensitivity: text("sensitivity"),
            approval: text("approval"),
            environment: text("environment"),
            workload: text("workload"),
            ..DecideRequest::default()
        });
        if out.len() == n {
            break;
        }
    }
    Ok(out)
}

/// One keep-alive client: `count` decisions, each timed from write to full answer.
async fn client(
    addr: std::net::SocketAddr,
    bodies: &[String],
    offset: usize,
    count: usize,
) -> Result<Vec<Duration>, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut took = Vec::with_capacity(count);
    let mut buf = Vec::with_capacity(8192);
    for i in 0..count {
        let body = &bodies[(offset + i) % bodies.len()];
        let request = format!(
            "POST /v1/decide HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let t = Instant::now();
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        buf.clear();
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or("no content-length")?;
                if !head.starts_with("http/1.1 200") && !head.starts_with("http/1.1 404") {
                    return Err(format!("unexpected answer: {head}"));
                }
                if buf.len() >= end + 4 + length {
                    break;
                }
            }
        }
        took.push(t.elapsed());
    }
    Ok(took)
}

fn report(what: &str, elapsed: Duration, took: &mut [Duration]) {
    took.sort_unstable();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!(
        "{what:<20}: {:>8.0} per s   p50 {:>7.1} µs   p99 {:>7.1} µs   max {:>7.1} µs   ({} requests)",
        took.len() as f64 / elapsed.as_secs_f64(),
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        took[took.len() - 1].as_secs_f64() * 1e6,
        took.len()
    );
}
