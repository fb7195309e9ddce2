//! Incremental evaluation gives the alerts eager evaluation gives, byte for byte
//! (`detected_at` included) at the same batch size: on every rule fixture, the scenario,
//! generated streams of several seeds, and a stream with late events and redeliveries.

use std::path::{Path, PathBuf};

mod support;

use nhi_drift::config::Config;
use nhi_drift::engine::rule::load_rules;
use nhi_drift::event::time::parse_rfc3339;
use nhi_drift::pipeline::{EvalMode, Options, Pipeline, Stats};
use support::{generated, replay_in, test_config};

/// One replay's alert lines and counters.
struct Run {
    alerts: Vec<String>,
    stats: Stats,
}

/// A pipeline per (mode, batch size), planned once and reset per input.
struct Pipelines {
    config: Config,
    runs: Vec<(EvalMode, usize, Pipeline)>,
}

impl Pipelines {
    async fn new(batch_sizes: &[usize]) -> Pipelines {
        let config = test_config();
        let rules = load_rules(None).expect("rules");
        let mut runs = Vec::new();
        for &batch in batch_sizes {
            for mode in [EvalMode::Eager, EvalMode::Incremental] {
                let mut options = Options::from_config(&config);
                options.batch_rows = batch;
                options.eval = mode;
                let pipeline = Pipeline::new(options, rules.clone(), &config.rule_params)
                    .await
                    .expect("pipeline");
                runs.push((mode, batch, pipeline));
            }
        }
        Pipelines { config, runs }
    }

    /// Replays `files` in every pipeline and asserts eager and incremental agree at each
    /// batch size; returns the incremental runs.
    async fn assert_same(
        &mut self,
        what: &str,
        files: &[PathBuf],
        as_of: Option<&str>,
    ) -> Vec<Run> {
        let as_of = as_of.map(|t| parse_rfc3339(t).expect("as_of"));
        let mut eager: Option<Run> = None;
        let mut incremental = Vec::new();
        for (mode, batch, pipeline) in &mut self.runs {
            pipeline.reset();
            let (alerts, stats) = replay_in(pipeline, &self.config, files, as_of).await;
            let inventory = pipeline.inventory();
            assert_eq!(
                (
                    inventory.active_credentials(),
                    inventory.identities_without_owner_pair()
                ),
                inventory.posture_from_scratch(),
                "{what}, {mode:?}, batch {batch}: the kept posture counts differ from a recount"
            );
            let run = Run { alerts, stats };
            match mode {
                EvalMode::Eager => eager = Some(run),
                EvalMode::Incremental => {
                    let reference = eager.take().expect("eager runs first");
                    assert_eq!(
                        reference.alerts.len(),
                        run.alerts.len(),
                        "{what}, batch {batch}: eager and incremental emit different numbers of alerts"
                    );
                    for (i, (e, n)) in reference.alerts.iter().zip(&run.alerts).enumerate() {
                        assert_eq!(e, n, "{what}, batch {batch}: alert {i} differs");
                    }
                    incremental.push(run);
                }
            }
        }
        incremental
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nhi-drift-eval-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn every_rule_fixture_and_the_scenario_agree_at_every_batch_size() {
    runtime().block_on(async {
        let mut pipelines = Pipelines::new(&[1, 1000, 200_000]).await;
        let root = Path::new("tests/fixtures/rules");
        let mut cases = 0;
        for rule in std::fs::read_dir(root).expect("fixtures") {
            let rule = rule.expect("entry").path();
            if !rule.is_dir() {
                continue;
            }
            for case in std::fs::read_dir(&rule).expect("rule dir") {
                let case = case.expect("entry").path();
                if !case.is_dir() {
                    continue;
                }
                let as_of = std::fs::read_to_string(case.join("case.toml"))
                    .ok()
                    .and_then(|text| {
                        let table: toml::Table = toml::from_str(&text).expect("case.toml");
                        table
                            .get("as_of")
                            .and_then(|v| v.as_str())
                            .map(str::to_owned)
                    });
                pipelines
                    .assert_same(
                        &case.display().to_string(),
                        &[case.join("events.jsonl")],
                        as_of.as_deref(),
                    )
                    .await;
                cases += 1;
            }
        }
        assert!(cases >= 100, "only {cases} fixture cases found");
        let runs = pipelines
            .assert_same(
                "the scenario",
                &[PathBuf::from("examples/scenario.jsonl")],
                None,
            )
            .await;
        assert!(runs[0].alerts.len() > 20);
    });
}

#[test]
fn generated_streams_agree_and_most_activity_skips_judging() {
    runtime().block_on(async {
        let dir = scratch("generated");
        // Batch size 1 runs the queries after every snapshot: a short stream.
        let mut single = Pipelines::new(&[1]).await;
        single
            .assert_same(
                "a short generated stream",
                &[generated(&dir, 25, 6, 11)],
                None,
            )
            .await;
        let mut pipelines = Pipelines::new(&[1000, 200_000]).await;
        let mut rebuilt = 0;
        for seed in [1, 2, 3] {
            let stream = generated(&dir, 200, 50, seed);
            let runs = pipelines
                .assert_same(&format!("generated seed {seed}"), &[stream], None)
                .await;
            let stats = &runs[1].stats;
            assert!(
                runs[1].alerts.len() >= 10,
                "seed {seed}: too few alerts to compare ({})",
                runs[1].alerts.len()
            );
            // The point of incremental evaluation: uses and calls mostly skip judging.
            let activity: u64 = stats
                .accepted
                .iter()
                .filter(|(t, _)| matches!(t.as_str(), "credential.used" | "tool.called"))
                .map(|(_, n)| n)
                .sum();
            assert!(
                stats.deferred > activity / 2,
                "seed {seed}: {} of {activity} uses and calls skipped judging",
                stats.deferred
            );
            rebuilt += stats.repaired;
        }
        // Long batches meet the case where a deferred use matters within its batch.
        assert!(
            rebuilt > 0,
            "no snapshot was rebuilt: that path went untested"
        );
    });
}

/// Moves every `late_every`-th event `shift` lines later (past the allowed lateness, so it
/// arrives late) and repeats every `again_every`-th event at the end (late redeliveries).
fn disorder(input: &Path, output: &Path, late_every: usize, shift: usize, again_every: usize) {
    let lines: Vec<String> = std::fs::read_to_string(input)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect();
    let mut out: Vec<Option<String>> = lines.iter().cloned().map(Some).collect();
    let mut moved = Vec::new();
    for i in (0..lines.len()).step_by(late_every).skip(1) {
        if let Some(line) = out[i].take() {
            moved.push((i + shift, line));
        }
    }
    let mut result = Vec::new();
    let mut moved = moved.into_iter().peekable();
    for (i, line) in out.into_iter().enumerate() {
        if let Some(line) = line {
            result.push(line);
        }
        while let Some((_, line)) = moved.next_if(|(at, _)| *at <= i) {
            result.push(line);
        }
    }
    result.extend(moved.map(|(_, line)| line));
    if again_every < lines.len() {
        result.extend(lines.iter().step_by(again_every).cloned());
    }
    std::fs::write(output, result.join("\n") + "\n").expect("write");
}

#[test]
fn late_events_and_redeliveries_agree_and_redeliveries_change_no_alert() {
    runtime().block_on(async {
        let dir = scratch("late");
        let stream = generated(&dir, 80, 30, 7);
        let disordered = dir.join("disordered.jsonl");
        disorder(&stream, &disordered, 97, 400, usize::MAX);
        let redelivered = dir.join("redelivered.jsonl");
        disorder(&stream, &redelivered, 97, 400, 13);
        let mut pipelines = Pipelines::new(&[1000, 200_000]).await;
        let once = pipelines
            .assert_same("late events", &[disordered], None)
            .await;
        let again = pipelines
            .assert_same("late events and redeliveries", &[redelivered], None)
            .await;
        let (before, after) = (&once[0].stats, &again[0].stats);
        assert!(before.late > 100, "only {} late events", before.late);
        // Every 13th event again at the end, long after its window closed: each is late
        // (its id is forgotten with its window), is applied again, and changes nothing.
        let lines = std::fs::read_to_string(&stream)
            .expect("read")
            .lines()
            .count();
        let repeated = lines.div_ceil(13) as u64;
        assert_eq!(
            after.late + after.duplicates,
            before.late + before.duplicates + repeated,
            "every redelivery is counted"
        );
        assert!(after.late > before.late + repeated / 2);
        for (a, b) in once.iter().zip(&again) {
            assert_eq!(a.alerts, b.alerts, "late redeliveries changed alerts");
        }
    });
}
