//! Forgetting (contract §2.2): ended credentials, completed tasks and offboarded
//! identities holding nothing are forgotten `inventory.forget_after` after they ended.

use std::process::Command;

use serde_json::Value;

fn replay(path: &std::path::Path, env: &[(&str, &str)]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .envs(env.iter().copied())
        .arg("replay")
        .arg(path)
        .output()
        .expect("run nhi-drift");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn write(name: &str, lines: &[&str]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nhi-drift-forget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n")).expect("write");
    path
}

#[test]
fn a_revoked_credential_fires_on_use_until_it_is_forgotten() {
    // k1 is revoked on 1 Jan. A use 29 days later is a use after revocation; a use 31 days
    // later finds the credential forgotten: an unknown credential again, used once.
    let path = write(
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
    let forgetting = replay(&path, &[]);
    assert_eq!(
        uses_after(&forgetting),
        ["2026-01-30T00:30:00Z"],
        "{forgetting:#?}"
    );
    let remembering = replay(&path, &[("NHI_DRIFT_INVENTORY__FORGET_AFTER", "off")]);
    assert_eq!(
        uses_after(&remembering),
        ["2026-01-30T00:30:00Z", "2026-02-01T00:30:00Z"],
        "{remembering:#?}"
    );
}

#[test]
fn state_of_a_long_stream_is_bounded_by_what_is_live() {
    use nhi_drift::generate::{GenerateOptions, generate};
    use nhi_drift::pipeline::{Options, Pipeline};
    let dir = std::env::temp_dir().join(format!("nhi-drift-forget-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join("gen.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let options = GenerateOptions {
        identities: 60,
        days: 120,
        seed: 3,
        start: 1_767_225_600,
    };
    generate(&options, &mut out).expect("generate");
    std::io::Write::flush(&mut out).expect("flush");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let counts = |forget_after: Option<i64>| {
        runtime.block_on(async {
            let mut config =
                nhi_drift::config::Config::load_with_env(None, Vec::new()).expect("config");
            config.input.max_future = nhi_drift::config::OffOrDuration(None);
            let rules = nhi_drift::engine::rule::load_rules(None).expect("rules");
            let mut options = Options::from_config(&config);
            options.forget_after = forget_after;
            let mut pipeline = Pipeline::new(options, rules, &config.rule_params)
                .await
                .expect("pipeline");
            let mut sinks = nhi_drift::replay::Sinks {
                format: nhi_drift::alert::format::AlertFormat::Json,
                alerts: &mut std::io::sink(),
                dead_letters: None,
            };
            let decoder = nhi_drift::event::Decoder::from_config(&config);
            nhi_drift::replay::replay(
                &mut pipeline,
                std::slice::from_ref(&path),
                None,
                &decoder,
                &mut sinks,
                |_, _| {},
            )
            .await
            .expect("replay");
            let live = pipeline
                .inventory()
                .credentials()
                .filter(|c| {
                    c.end()
                        .is_none_or(|e| e > pipeline.max_event_time().unwrap())
                })
                .count();
            (pipeline.inventory().credential_count(), live)
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
    use nhi_drift::pipeline::{Options, Pipeline};
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
    let path = write(
        "many-windows.jsonl",
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut config =
            nhi_drift::config::Config::load_with_env(None, Vec::new()).expect("config");
        config.input.max_future = nhi_drift::config::OffOrDuration(None);
        let rules = nhi_drift::engine::rule::load_rules(None).expect("rules");
        let mut pipeline = Pipeline::new(Options::from_config(&config), rules, &config.rule_params)
            .await
            .expect("pipeline");
        let mut out = Vec::new();
        let mut sinks = nhi_drift::replay::Sinks {
            format: nhi_drift::alert::format::AlertFormat::Json,
            alerts: &mut out,
            dead_letters: None,
        };
        let decoder = nhi_drift::event::Decoder::from_config(&config);
        nhi_drift::replay::replay(
            &mut pipeline,
            &[path],
            None,
            &decoder,
            &mut sinks,
            |_, _| {},
        )
        .await
        .expect("replay");
        let env_alerts = String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| l.contains("NHI-ENV-001"))
            .count();
        assert_eq!(env_alerts, 3000);
        // Swept whenever they double (from 1024 on): at most twice the ~720 of the last
        // day, not one per alert ever sent (3001).
        let entries = pipeline.window_dedup_entries();
        assert!(entries <= 2048, "{entries} window dedup entries kept");
    });
}
