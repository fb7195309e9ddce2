//! Forgetting (contract §2.2): ended credentials, completed tasks and offboarded
//! identities holding nothing are forgotten `inventory.forget_after` after they ended.

mod support;

use nhi_drift::pipeline::{Options, Pipeline};
use serde_json::Value;
use support::{generated, replay_args, replay_in, test_config, write_lines};

/// A pipeline with the test config and the bundled rules, `forget_after` as given.
async fn pipeline(forget_after: Option<i64>) -> (Pipeline, nhi_drift::config::Config) {
    let config = test_config();
    let rules = nhi_drift::engine::rule::load_rules(None).expect("rules");
    let mut options = Options::from_config(&config);
    options.forget_after = forget_after;
    let pipeline = Pipeline::new(options, rules, &config.rule_params)
        .await
        .expect("pipeline");
    (pipeline, config)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

#[test]
fn a_revoked_credential_fires_on_use_until_it_is_forgotten() {
    // k1 is revoked on 1 Jan. A use 29 days later is a use after revocation; a use 31 days
    // later finds the credential forgotten: an unknown credential again, used once.
    let path = write_lines(
        "forget",
        "revoked.jsonl",
        &[
            r#"{"id":"e1","type":"identity.registered","time":"2026-01-01T00:00:00Z","identity":"svc-a","kind":"service_account"}"#,
            r#"{"id":"e2","type":"identity.owner_assigned","time":"2026-01-01T00:00:00Z","identity":"svc-a","business_owner":"alice","technical_custodian":"bob"}"#,
            r#"{"id":"e3","type":"identity.approved","time":"2026-01-01T00:00:00Z","identity":"svc-a","approver":"carol","scopes":[]}"#,
            r#"{"id":"e4","type":"credential.issued","time":"2026-01-01T00:00:00Z","identity":"svc-a","credential":"k1","kind":"oauth_token","expires":"2026-01-01T01:00:00Z"}"#,
            r#"{"id":"e5","type":"credential.revoked","time":"2026-01-01T00:30:00Z","identity":"svc-a","credential":"k1"}"#,
            r#"{"id":"e6","type":"credential.used","time":"2026-01-30T00:30:00Z","identity":"svc-a","credential":"k1"}"#,
            r#"{"id":"e7","type":"credential.used","time":"2026-02-01T00:30:00Z","identity":"svc-a","credential":"k1"}"#,
        ],
    );
    let uses_after = |alerts: &[Value]| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| a["rule_id"] == "NHI-OFF-001")
            .map(|a| a["opened_at"].as_str().expect("opened_at").to_owned())
            .collect()
    };
    let path = path.to_str().expect("path");
    let (forgetting, _) = replay_args(&[path], &[]);
    assert_eq!(
        uses_after(&forgetting),
        ["2026-01-30T00:30:00Z"],
        "{forgetting:#?}"
    );
    let (remembering, _) = replay_args(&[path], &[("NHI_DRIFT_INVENTORY__FORGET_AFTER", "off")]);
    assert_eq!(
        uses_after(&remembering),
        ["2026-01-30T00:30:00Z", "2026-02-01T00:30:00Z"],
        "{remembering:#?}"
    );
}

#[test]
fn state_of_a_long_stream_is_bounded_by_what_is_live() {
    let dir = std::env::temp_dir().join(format!("nhi-drift-forget-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = generated(&dir, 60, 120, 3);
    let runtime = runtime();
    let counts = |forget_after: Option<i64>| {
        runtime.block_on(async {
            let (mut pipeline, config) = pipeline(forget_after).await;
            replay_in(&mut pipeline, &config, std::slice::from_ref(&path), None).await;
            let last = pipeline.max_event_time().expect("events");
            let inventory = pipeline.inventory();
            let live = inventory
                .credentials()
                .filter(|c| c.end().is_none_or(|e| e > last))
                .count();
            (inventory.credential_count(), live)
        })
    };
    let (kept, live) = counts(None);
    let (bounded, live_too) = counts(Some(30 * 86_400_000_000));
    assert_eq!(live, live_too, "forgetting never drops a live credential");
    // Four months of rotations: most credentials ever seen ended long ago.
    assert!(kept > 3 * live, "kept {kept}, live {live}");
    assert!(
        bounded < kept / 2,
        "forgetting kept {bounded} of {kept} credentials ({live} live)"
    );
}

#[test]
fn window_dedup_entries_are_forgotten_once_their_period_passed() {
    // 3000 credentials, each used from two environments once, two minutes apart: one
    // NHI-ENV-001 alert each, over four days. Entries older than the 24 h dedup period
    // with nothing suppressed can go; the alerts are all there.
    let start = 1_767_225_600i64;
    let mut lines = Vec::new();
    for i in 0..3000i64 {
        let time = nhi_drift::event::time::format_rfc3339((start + i * 120) * 1_000_000);
        for env in ["prod", "dev"] {
            lines.push(format!(
                r#"{{"id":"u{i}-{env}","type":"credential.used","time":"{time}","identity":"svc","credential":"k{i}","environment":"{env}"}}"#
            ));
        }
    }
    let path = write_lines(
        "forget",
        "many-windows.jsonl",
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    runtime().block_on(async {
        let (mut pipeline, config) = pipeline(test_config().inventory.forget_after.0).await;
        let (alerts, _) = replay_in(&mut pipeline, &config, &[path], None).await;
        let env_alerts = alerts.iter().filter(|l| l.contains("NHI-ENV-001")).count();
        assert_eq!(env_alerts, 3000);
        // Swept whenever they double (from 1024 on): at most twice the ~720 of the last
        // day, not one per alert ever sent (3001).
        let entries = pipeline.window_dedup_entries();
        assert!(entries <= 2048, "{entries} window dedup entries kept");
    });
}
