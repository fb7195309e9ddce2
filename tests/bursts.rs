//! Event time in `nhi-drift run` when input comes in bursts: the service is started first
//! and left idle well past `time.partition_idle`, then the input arrives all at once (as it
//! does after a quiet night or a producer outage) — through every topic at once, or one
//! topic after another — also after a graceful restart and after `kill -9` while idle.
//! Every run must give `replay`'s alerts with no late event: how long the service waited
//! for its input must never change what it finds.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    Broker, RunSettings, Scratch, Service, assert_same_alerts, by_id, finish_input, inputs, replay,
    split, split_by_topic, with_clock_event,
};

/// Idle time before a burst: well past the default `time.partition_idle` (2 s).
const IDLE: Duration = Duration::from_secs(30);

/// A generated stream of a few thousand events followed by the scenario, which starts
/// after it (so the file, and each partition, is in event-time order), plus a final clock
/// event; returns the file and the `--as-of` at which a replay matches.
fn burst_input(dir: &Path) -> (PathBuf, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .args([
            "generate",
            "--identities",
            "40",
            "--days",
            "4",
            "--seed",
            "11",
        ])
        .output()
        .expect("generate");
    assert!(output.status.success());
    let generated = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        generated.lines().count() >= 2000,
        "a few thousand generated events: {}",
        generated.lines().count()
    );
    let scenario = std::fs::read_to_string("examples/scenario.jsonl").expect("scenario");
    let path = dir.join("burst.jsonl");
    let as_of = with_clock_event(&format!("{}\n{scenario}", generated.trim_end()), &path);
    (path, as_of)
}

fn settings<'a>(broker: &'a str, scratch: &Scratch, prefix: &'a str) -> RunSettings<'a> {
    RunSettings::in_dir(broker, &scratch.0, prefix, "200ms")
}

/// Waits for the input of `run`, checks that nothing was late, stops the service and
/// returns the alerts of its setup.
fn finish(
    broker: &Broker,
    run: &RunSettings<'_>,
    mut service: Service,
) -> std::collections::BTreeMap<(String, String), Value> {
    finish_input(broker, run, &mut service);
    let late = service.late_events();
    assert_eq!(
        late,
        Some(0),
        "{}: no event is late: {}",
        run.prefix,
        service.log_text()
    );
    service.terminate();
    by_id(broker.values(&format!("{}.alerts", run.prefix))).0
}

#[test]
fn a_burst_after_an_idle_period_gives_the_alerts_of_replay() {
    let scratch = Scratch::new("burst");
    let prefixes = ["burst0", "burst1", "burst2", "burst3", "burst4", "in-turn"];
    let broker = Broker::start(&prefixes);
    let bootstrap = broker.bootstrap();
    let (input, as_of) = burst_input(&scratch.0);
    let want = by_id(replay(&input, &as_of)).0;
    assert!(want.len() >= 25, "the input fires alerts: {}", want.len());

    let runs: Vec<RunSettings<'_>> = prefixes
        .iter()
        .map(|p| settings(&bootstrap, &scratch, p))
        .collect();
    let mut services: Vec<Service> = runs.iter().map(Service::start).collect();
    for service in &mut services {
        service.wait_ready();
    }
    std::thread::sleep(IDLE);

    // Five times the whole input at once, through the three topics together, each burst
    // written within milliseconds (from this process, as a busy producer would).
    for run in &runs[..5] {
        broker.publish_by_type(&input, run.prefix);
    }
    // The three topics written one after another, within a second.
    let started = Instant::now();
    for (part, topic) in split_by_topic(&input).iter().zip(inputs(runs[5].prefix)) {
        broker.publish(part, &topic);
    }
    let in_turn = started.elapsed();
    assert!(
        in_turn < Duration::from_secs(1),
        "the topics were written within a second: {in_turn:?}"
    );

    for (run, service) in runs.iter().zip(services) {
        let got = finish(&broker, run, service);
        assert_same_alerts(&got, &want, &format!("{} against replay", run.prefix));
    }
}

#[test]
fn a_burst_after_a_restart_while_idle_gives_the_alerts_of_replay() {
    let scratch = Scratch::new("burst-restart");
    let broker = Broker::start(&["graceful", "crash"]);
    let bootstrap = broker.bootstrap();
    let (input, as_of) = burst_input(&scratch.0);
    let want = by_id(replay(&input, &as_of)).0;
    let halves = split(&input, 2);

    // Both setups read the first half, go idle, and are stopped while idle: one with
    // SIGTERM, one with kill -9.
    let runs = [
        settings(&bootstrap, &scratch, "graceful"),
        settings(&bootstrap, &scratch, "crash"),
    ];
    for run in &runs {
        broker.produce(&halves[0], run.prefix);
    }
    let mut first: Vec<Service> = runs.iter().map(Service::start).collect();
    for (run, service) in runs.iter().zip(&mut first) {
        service.wait_ready();
        finish_input(&broker, run, service);
    }
    std::thread::sleep(Duration::from_secs(5));
    for service in &first {
        assert_eq!(service.late_events(), Some(0), "{}", service.log_text());
    }
    let mut first = first.into_iter();
    first.next().expect("graceful").terminate();
    first.next().expect("crash").kill();

    // Restarted, idle again, then the second half in one burst.
    let mut second: Vec<Service> = runs.iter().map(Service::start).collect();
    for service in &mut second {
        service.wait_ready();
    }
    std::thread::sleep(IDLE);
    for run in &runs {
        broker.publish_by_type(&halves[1], run.prefix);
    }
    for (run, service) in runs.iter().zip(second) {
        let got = finish(&broker, run, service);
        assert_same_alerts(
            &got,
            &want,
            &format!("{} restart while idle, then a burst", run.prefix),
        );
    }
}
