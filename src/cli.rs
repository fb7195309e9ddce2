//! The command line (contract §5). `anyhow` lives here only; library code has typed errors.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::adapt::Format;
use crate::adapt::input::{Group, group_paths};

use crate::alert::format::AlertFormat;
use crate::config::{Config, LogFormat};
use crate::engine::Engine;
use crate::engine::rule::{Rule, load_rules};
use crate::event::Decoder;
use crate::event::time::parse_rfc3339;
use crate::generate::{GenerateOptions, generate};
use crate::pipeline::{EvalMode, Options, Pipeline};
use crate::replay::{Input, Sinks, input_files, replay_inputs};

/// Streaming detection of non-human identity drift.
#[derive(Debug, Parser)]
#[command(name = "nhi-drift", version, about)]
pub struct Cli {
    /// Configuration file (TOML), applied over the embedded defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Load rules from this directory instead of the bundled ones.
    #[arg(long, global = true, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// When state rules run again (overrides `engine.eval`): incremental or eager.
    #[arg(long, global = true, value_enum)]
    pub eval: Option<EvalMode>,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The service: consume the input topics, detect, produce alerts and dead letters.
    Run,
    /// A standalone development broker (the embedded one of `run`) with the topics
    /// created; prints its address. Memory only: nothing survives its exit.
    Broker {
        /// Address to serve and advertise to clients (default: a free loopback port).
        #[arg(long, value_name = "HOST:PORT")]
        listen: Option<String>,
        /// Partitions per topic (default: kafka.embedded_partitions).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
    },
    /// Publish recorded .jsonl fixtures to Kafka, each event to its type's topic.
    Produce {
        /// Files or directories of .jsonl events, sent in order.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Bootstrap servers (default: kafka.brokers).
        #[arg(long, value_name = "HOST:PORT")]
        brokers: Option<String>,
        /// Send each event to the topic of its type. The default; accepted because the
        /// contract's command line names it.
        #[arg(long, conflicts_with = "topic")]
        topic_from_type: bool,
        /// Send every line to this topic instead.
        #[arg(long, value_name = "NAME")]
        topic: Option<String>,
    },
    /// Run recorded .jsonl fixtures (files or directories) through the pipeline.
    Replay {
        /// Files or directories of .jsonl events, read in order; after `--format F`,
        /// files of that real-world format, adapted (several groups may be given).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The format of the paths after it (contract §7); default `nhi`, the events of
        /// §1. Repeat it for several groups: `--format inventory inv.yaml --format
        /// cloudtrail trail.json`.
        #[arg(long, value_enum)]
        format: Vec<Format>,
        /// The paths by format (filled from the positions on the command line).
        #[arg(skip)]
        groups: Vec<Group>,
        /// Final evaluation time (RFC 3339); default: the last event time.
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// Alert format.
        #[arg(long, value_enum)]
        alert_format: Option<AlertFormat>,
        /// Write alerts here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write rejected records here as JSON lines.
        #[arg(long, value_name = "FILE")]
        dead_letter: Option<PathBuf>,
    },
    /// Convert real-world audit logs (contract §7) to .jsonl events, sorted by time.
    Adapt {
        /// The format of the paths after it; repeat it for several groups.
        #[arg(long, value_enum, required = true)]
        format: Vec<Format>,
        /// Files or directories to convert.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write the events here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write skipped records (with their reason, secrets removed) here as JSON lines.
        #[arg(long, value_name = "FILE")]
        skipped: Option<PathBuf>,
        /// The paths by format (filled from the positions on the command line).
        #[arg(skip)]
        groups: Vec<Group>,
    },
    /// Show one identity's inventory and open findings, from a running service (`--url`)
    /// or from a replay of recorded files (`PATH... [--as-of TIME]`).
    Inspect {
        /// The identity.
        identity: String,
        /// Base URL of a running service, e.g. http://127.0.0.1:9898 (bearer token:
        /// api.token, e.g. NHI_DRIFT_API__TOKEN).
        #[arg(long, value_name = "URL", conflicts_with_all = ["paths", "as_of"])]
        url: Option<String>,
        /// Files or directories of .jsonl events to replay instead.
        #[arg(required_unless_present = "url")]
        paths: Vec<PathBuf>,
        /// Replay up to this time (RFC 3339); default: the last event time.
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// Print JSON (the API's body) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List, check or test the rules.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Write a deterministic synthetic event stream (JSON lines).
    Generate {
        /// Number of identities.
        #[arg(long, default_value_t = 100)]
        identities: u32,
        /// Number of days.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// First day (RFC 3339); default 2026-01-01T00:00:00Z.
        #[arg(long, value_name = "TIME")]
        start: Option<String>,
        /// Write here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// List the rules with their metadata.
    List,
    /// Parse and plan every query against the table schemas.
    Check,
    /// Run every rule's fixtures.
    Test {
        /// Fixture root.
        #[arg(long, default_value = "tests/fixtures/rules")]
        fixtures: PathBuf,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = parse(std::env::args_os());
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", render_error(&error));
            ExitCode::from(2)
        }
    }
}

/// Parses the command line, grouping `replay` and `adapt` paths by the `--format` given
/// before them (clap alone keeps only the values, not their positions).
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Cli {
    let matches = Cli::command().get_matches_from(args);
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let groups_of = |name: &str| -> Vec<Group> {
        let Some(sub) = matches.subcommand_matches(name) else {
            return Vec::new();
        };
        let positioned = |id: &str| -> Vec<usize> {
            sub.indices_of(id)
                .map(Iterator::collect)
                .unwrap_or_default()
        };
        let formats: Vec<(usize, Format)> = positioned("format")
            .into_iter()
            .zip(
                sub.get_many::<Format>("format")
                    .into_iter()
                    .flatten()
                    .copied(),
            )
            .collect();
        let paths: Vec<(usize, PathBuf)> = positioned("paths")
            .into_iter()
            .zip(
                sub.get_many::<PathBuf>("paths")
                    .into_iter()
                    .flatten()
                    .cloned(),
            )
            .collect();
        group_paths(&formats, &paths)
    };
    match &mut cli.command {
        Command::Replay { groups, .. } => *groups = groups_of("replay"),
        Command::Adapt { groups, .. } => *groups = groups_of("adapt"),
        _ => {}
    }
    cli
}

/// Completes at the first SIGINT or SIGTERM: the service then finishes the batch,
/// checkpoints and exits. A second signal exits at once, leaving the last checkpoint to
/// restart from. Call inside the runtime.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let (first, first_received) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut first = Some(first);
        loop {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            match first.take() {
                Some(first) => {
                    tracing::info!(
                        signal = name,
                        "stopping: finishing the batch, then checkpointing; signal again to exit at once"
                    );
                    let _ = first.send(());
                }
                None => {
                    tracing::warn!(
                        signal = name,
                        "exiting without a final checkpoint; the last checkpoint stands"
                    );
                    std::process::exit(130);
                }
            }
        }
    });
    Ok(async move {
        let _ = first_received.await;
    })
}

/// Completes at the first SIGINT or SIGTERM. Call inside the runtime.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping");
    })
}

/// The error and its causes, each said once: the library's errors already include their
/// source's text in their own message, so a cause whose text is already there is skipped.
fn render_error(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless; ignore it.
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(eval) = cli.eval {
        config.engine.eval = eval;
    }
    init_logging(&config);
    let rules_dir = cli.rules.clone().or_else(|| config.rules_dir.clone());
    let rules = load_rules(rules_dir.as_deref())?;
    config.check_rule_params(&rules)?;
    let runtime = match cli.command {
        // The service serves HTTP while the pipeline evaluates: two worker threads.
        Command::Run => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .context("starting the async runtime")?;
    match cli.command {
        Command::Run => {
            runtime.block_on(async {
                let shutdown = shutdown_signal()?;
                crate::service::run(&config, rules, shutdown).await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Broker { listen, partitions } => {
            let options = crate::broker::Options { listen, partitions };
            runtime.block_on(async {
                let stop = stop_signal()?;
                let ready = |address: &str| {
                    // One line a script can parse; stdout carries nothing else.
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "broker listening on {address}");
                    let _ = out.flush();
                };
                crate::broker::serve(&config, &options, ready, stop).await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Produce {
            paths,
            brokers,
            topic_from_type: _,
            topic,
        } => {
            let produced =
                crate::produce::produce(&config, brokers.as_deref(), &paths, topic.as_deref())?;
            for (topic, n) in &produced.per_topic {
                eprintln!("{n:>9} records to {topic}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            paths: _,
            format: _,
            groups,
            as_of,
            alert_format,
            out,
            dead_letter,
        } => runtime.block_on(replay_command(
            &config,
            rules,
            &groups,
            as_of.as_deref(),
            alert_format.unwrap_or(config.alerts.format),
            out.as_deref(),
            dead_letter.as_deref(),
        )),
        Command::Adapt {
            format: _,
            paths: _,
            out,
            skipped,
            groups,
        } => adapt_command(&config, &groups, out.as_deref(), skipped.as_deref()),
        Command::Inspect {
            identity,
            url,
            paths,
            as_of,
            json,
        } => {
            let view = match url {
                Some(url) => {
                    let token = Some(config.api.token.as_str()).filter(|t| !t.is_empty());
                    crate::ask::inspect::from_url(&url, token, &identity)?
                }
                None => {
                    let as_of = as_of.map(|t| parse_time(&t, "--as-of")).transpose()?;
                    let files = input_files(&paths)?;
                    if files.is_empty() {
                        bail!("no .jsonl files under the paths given");
                    }
                    runtime.block_on(crate::ask::inspect::from_files(
                        &config, rules, &files, as_of, &identity,
                    ))?
                }
            };
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
            } else {
                let view: crate::ask::identity::IdentityView = serde_json::from_value(view)
                    .context("the service's identity view has an unexpected form")?;
                write!(out, "{}", view.render_table())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { action } => runtime.block_on(rules_command(&config, rules, action)),
        Command::Generate {
            identities,
            days,
            seed,
            start,
            out,
        } => generate_command(identities, days, seed, start.as_deref(), out.as_deref()),
    }
}

fn parse_time(text: &str, what: &str) -> Result<i64> {
    parse_rfc3339(text).with_context(|| format!("{what} `{text}` is not an RFC 3339 timestamp"))
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 16, file))
}

/// The merged events of every adapted group, each group's own outcome, and how many
/// files they read.
type AdaptedGroups = (
    Vec<crate::adapt::AdaptedEvent>,
    Vec<(Format, crate::adapt::Adapted)>,
    usize,
);

/// Adapts every group except the native one: the merged events sorted by time, and the
/// outcome counts printed to stderr.
fn adapt_groups(config: &Config, groups: &[Group]) -> Result<AdaptedGroups> {
    let decoder = crate::adapt::decoder(config);
    let mut events = Vec::new();
    let mut per_format = Vec::new();
    let mut files = 0;
    for group in groups.iter().filter(|g| g.format != Format::Nhi) {
        let (mut adapted, read) = crate::adapt::input::adapt_group(group, &config.adapt, &decoder)?;
        eprint!("{}", adapted.counts.render(group.format));
        events.append(&mut adapted.events);
        per_format.push((group.format, adapted));
        files += read;
    }
    crate::adapt::sort_events(&mut events);
    Ok((events, per_format, files))
}

fn adapt_command(
    config: &Config,
    groups: &[Group],
    out: Option<&Path>,
    skipped: Option<&Path>,
) -> Result<ExitCode> {
    if groups.iter().any(|g| g.format == Format::Nhi) {
        bail!("give --format before the paths it applies to (e.g. --format cloudtrail trail.json)");
    }
    let (events, per_format, _) = adapt_groups(config, groups)?;
    let lines = crate::adapt::input::to_lines(&events);
    match out {
        Some(path) => {
            let mut writer = create(path)?;
            writer.write_all(&lines)?;
            writer.flush()?;
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&lines)?;
            stdout.flush()?;
        }
    }
    if let Some(path) = skipped {
        let mut writer = create(path)?;
        for (format, adapted) in &per_format {
            for skip in &adapted.skipped {
                writeln!(writer, "{}", skip.to_json(*format))?;
            }
        }
        writer.flush()?;
    }
    eprintln!(
        "{} events written (sorted by time; an event implied by several records once)",
        events.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn replay_command(
    config: &Config,
    rules: Vec<Rule>,
    groups: &[Group],
    as_of: Option<&str>,
    format: AlertFormat,
    out: Option<&Path>,
    dead_letter: Option<&Path>,
) -> Result<ExitCode> {
    let as_of = as_of.map(|t| parse_time(t, "--as-of")).transpose()?;
    let native: Vec<PathBuf> = groups
        .iter()
        .filter(|g| g.format == Format::Nhi)
        .flat_map(|g| g.paths.iter().cloned())
        .collect();
    let files = input_files(&native)?;
    let (adapted, _, adapted_files) = adapt_groups(config, groups)?;
    // A source file whose records were all skipped is a run with no events, not an error.
    if files.is_empty() && adapted_files == 0 {
        let all: Vec<String> = groups
            .iter()
            .flat_map(|g| g.paths.iter().map(|p| p.display().to_string()))
            .collect();
        bail!(
            "no input files under {}: .jsonl files of events, or files of the --format given",
            all.join(", ")
        );
    }
    let mut inputs = Vec::new();
    if !adapted.is_empty() {
        let names: Vec<&str> = groups
            .iter()
            .filter(|g| g.format != Format::Nhi)
            .map(|g| g.format.as_str())
            .collect();
        inputs.push(Input::Memory {
            name: format!("adapted:{}", names.join("+")),
            lines: std::sync::Arc::new(crate::adapt::input::to_lines(&adapted)),
        });
    }
    inputs.extend(files.iter().cloned().map(Input::File));
    let mut pipeline =
        Pipeline::new(Options::from_config(config), rules, &config.rule_params).await?;
    let stdout = std::io::stdout();
    let mut alerts_out: Box<dyn Write> = match out {
        Some(path) => Box::new(create(path)?),
        None => Box::new(BufWriter::new(stdout.lock())),
    };
    let mut dead_out = dead_letter.map(create).transpose()?;
    let total_bytes: u64 = inputs
        .iter()
        .map(|input| match input {
            Input::File(f) => std::fs::metadata(f).map_or(0, |m| m.len()),
            Input::Memory { lines, .. } => lines.len() as u64,
        })
        .sum();
    let show_progress = std::io::stderr().is_terminal();
    let mut sinks = Sinks {
        format,
        alerts: &mut alerts_out,
        dead_letters: dead_out.as_mut().map(|w| w as &mut dyn Write),
    };
    let summary = replay_inputs(
        &mut pipeline,
        &inputs,
        as_of,
        &Decoder::from_config(config),
        &mut sinks,
        |stats, bytes| {
            if show_progress && total_bytes > 0 {
                eprint!(
                    "\r  {:>5.1}%  {} records  {} alerts ",
                    bytes as f64 * 100.0 / total_bytes as f64,
                    stats.read,
                    stats.alerts_total()
                );
            }
        },
    )
    .await?;
    if show_progress {
        eprint!("\r{:60}\r", "");
    }
    alerts_out.flush()?;
    eprint!("{}", summary.render(pipeline.rules()));
    Ok(ExitCode::SUCCESS)
}

async fn rules_command(config: &Config, rules: Vec<Rule>, action: RulesAction) -> Result<ExitCode> {
    match action {
        RulesAction::List => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<14} {:<30} {:<7} {:<9} {:<22} frameworks",
                "id", "name", "kind", "severity", "key"
            )?;
            for rule in &rules {
                let key = if rule.key.is_empty() {
                    "identity".to_owned()
                } else {
                    format!("identity, {}", rule.key.join(" | "))
                };
                let params = config.rule_params.of_rule(&rule.name);
                writeln!(
                    out,
                    "{:<14} {:<30} {:<7} {:<9} {:<22} {}",
                    rule.id,
                    rule.name,
                    rule.kind.as_str(),
                    rule.severity.as_str(),
                    key,
                    rule.frameworks.join(" ")
                )?;
                if !params.is_empty() {
                    let list: Vec<String> =
                        params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    writeln!(out, "{:<14} thresholds: {}", "", list.join(", "))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RulesAction::Check => {
            let count = rules.len();
            Engine::new(rules, &config.rule_params).await?;
            println!("{count} rules parsed and planned against the table schemas");
            Ok(ExitCode::SUCCESS)
        }
        RulesAction::Test { fixtures } => {
            if !fixtures.is_dir() {
                bail!("fixture directory {} not found", fixtures.display());
            }
            let outcomes = crate::fixtures::run_all(&fixtures, config, &rules).await;
            let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
            for outcome in &outcomes {
                match &outcome.failure {
                    None => println!("ok    {} {}", outcome.rule_id, outcome.case),
                    Some(why) => println!(
                        "FAIL  {} {}\n  {}",
                        outcome.rule_id,
                        outcome.case,
                        why.replace('\n', "\n  ")
                    ),
                }
            }
            println!("{} passed, {} failed", outcomes.len() - failed, failed);
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn generate_command(
    identities: u32,
    days: u32,
    seed: u64,
    start: Option<&str>,
    out: Option<&Path>,
) -> Result<ExitCode> {
    let start = match start {
        Some(text) => parse_time(text, "--start")? / 1_000_000,
        None => 1_767_225_600, // 2026-01-01T00:00:00Z
    };
    let options = GenerateOptions {
        identities,
        days,
        seed,
        start,
    };
    let summary = match out {
        Some(path) => {
            let mut writer = create(path)?;
            let summary = generate(&options, &mut writer)?;
            writer.flush()?;
            summary
        }
        None => {
            let mut writer = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let summary = generate(&options, &mut writer)?;
            writer.flush()?;
            summary
        }
    };
    eprintln!(
        "generated {} events for {} identities over {} days (seed {seed})",
        summary.events, summary.identities, days
    );
    let seeded: Vec<String> = summary
        .violations
        .iter()
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    eprintln!("seeded violations (identities): {}", seeded.join(" "));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::render_error;

    #[test]
    fn an_error_chain_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "EOF at line 1");
        let layered = crate::service::checkpoint::CheckpointError::Io {
            path: "state/checkpoint.bin".into(),
            source: io,
        };
        let error = anyhow::Error::new(layered).context("restoring the service");
        assert_eq!(
            render_error(&error),
            "restoring the service: state/checkpoint.bin: EOF at line 1"
        );
    }
}
