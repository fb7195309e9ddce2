//! The service run inside the test process (as mini-redis tests its server): it takes
//! its shutdown as a future, so a test decides when it stops — here, once the checkpoint
//! covers every input record — and gets its result back.

mod support;

use std::time::{Duration, Instant};

use nhi_drift::config::Config;
use nhi_drift::engine::rule::load_rules;
use support::{
    Broker, Scratch, assert_same_alerts, by_id, checkpoint_offsets, replay, topic_env,
    watermark_settled, with_clock_event,
};

#[test]
fn the_service_runs_in_process_until_its_shutdown_future_completes() {
    let scratch = Scratch::new("in-process");
    let broker = Broker::start(&["inproc"]);
    let scenario = std::fs::read_to_string("examples/scenario.jsonl").expect("scenario");
    let fixture = scratch.0.join("scenario.jsonl");
    let as_of = with_clock_event(&scenario, &fixture);
    broker.produce(&fixture, "inproc");
    let end = broker.input_end_offsets("inproc");

    let state = scratch.0.join("state");
    let mut env: Vec<(String, String)> = topic_env("inproc");
    env.extend(
        [
            ("NHI_DRIFT_KAFKA__BROKERS", broker.bootstrap()),
            ("NHI_DRIFT_KAFKA__GROUP_ID", "inproc".to_owned()),
            ("NHI_DRIFT_CHECKPOINT__DIR", state.display().to_string()),
            ("NHI_DRIFT_CHECKPOINT__INTERVAL", "100ms".to_owned()),
            ("NHI_DRIFT_HTTP__LISTEN", "127.0.0.1:0".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let config = Config::load_with_env(None, env).expect("config");
    let rules = load_rules(None).expect("rules");

    // Stop once every record is checkpointed with a settled watermark.
    let watched = state.clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    let shutdown = async move {
        while !(checkpoint_offsets(&watched) == end && watermark_settled(&watched))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(nhi_drift::service::run(&config, rules, shutdown))
        .expect("the service stops cleanly");
    assert!(
        Instant::now() < deadline,
        "the service processed its input in time"
    );

    let (got, duplicates) = by_id(broker.values("inproc.alerts"));
    assert_eq!(duplicates, 0);
    let (want, _) = by_id(replay(&fixture, &as_of));
    assert_same_alerts(&got, &want, "in process against replay");
}
