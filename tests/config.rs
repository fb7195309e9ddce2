//! Configuration: every shipped config file parses; unknown keys are rejected by name.

use std::path::Path;

use nhi_drift::config::Config;
use nhi_drift::engine::rule::load_rules;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_shipped_config_file_parses_and_matches_the_rules() {
    let rules = load_rules(Some(Path::new("queries"))).expect("rules");
    let mut checked = 0;
    for entry in std::fs::read_dir("config").expect("config dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = Config::load_with_env(Some(&path), Vec::new())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            config
                .check_rule_params(&rules)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn defaults_match_the_contract() {
    let c = Config::load_with_env(None, Vec::new()).expect("defaults");
    assert_eq!(c.kafka.brokers, "embedded");
    assert_eq!(c.kafka.group_id, "nhi-drift");
    assert_eq!(c.topics.identity, "nhi.identity");
    assert_eq!(c.topics.deadletter, "nhi.deadletter");
    assert_eq!(c.http.listen, "127.0.0.1:9898");
    assert_eq!(c.time.window.0, 60_000_000);
    assert_eq!(c.time.allowed_lateness.0, 300_000_000);
    assert_eq!(c.input.max_event_bytes, 1 << 20);
    assert_eq!(c.input.max_future.0, Some(3_600_000_000), "1 h ahead");
}

#[test]
fn max_future_is_off_or_a_duration() {
    let c =
        Config::load_with_env(None, env(&[("NHI_DRIFT_INPUT__MAX_FUTURE", "off")])).expect("off");
    assert_eq!(c.input.max_future.0, None);
    let c =
        Config::load_with_env(None, env(&[("NHI_DRIFT_INPUT__MAX_FUTURE", "0s")])).expect("zero");
    assert_eq!(c.input.max_future.0, Some(0));
    let error = Config::load_with_env(None, env(&[("NHI_DRIFT_INPUT__MAX_FUTURE", "soon")]))
        .expect_err("not a duration")
        .to_string();
    assert!(
        error.contains("`soon` is neither `off` nor a duration"),
        "{error}"
    );
}

#[test]
fn evaluation_is_incremental_or_eager() {
    use nhi_drift::pipeline::EvalMode;
    let c = Config::load_with_env(None, Vec::new()).expect("defaults");
    assert_eq!(c.engine.eval, EvalMode::Incremental);
    let c =
        Config::load_with_env(None, env(&[("NHI_DRIFT_ENGINE__EVAL", "eager")])).expect("eager");
    assert_eq!(c.engine.eval, EvalMode::Eager);
    let error = Config::load_with_env(None, env(&[("NHI_DRIFT_ENGINE__EVAL", "lazy")]))
        .expect_err("not a mode")
        .to_string();
    assert!(error.contains("lazy") && error.contains("eager"), "{error}");
}

#[test]
fn environment_overrides_file_and_defaults() {
    let dir = std::env::temp_dir().join(format!("nhi-drift-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "[kafka]\nbrokers = \"file:9092\"\n[rules.unrotated_secret]\nmax_age = \"30d\"\n",
    )
    .expect("write");
    let c = Config::load_with_env(
        Some(&file),
        env(&[("NHI_DRIFT_KAFKA__BROKERS", "env:9092")]),
    )
    .expect("loads");
    assert_eq!(c.kafka.brokers, "env:9092");
    assert_eq!(
        c.rule_params
            .get("unrotated_secret", "max_age")
            .map(|v| v.to_string()),
        Some("30d".to_owned())
    );
    let c = Config::load_with_env(
        None,
        env(&[("NHI_DRIFT_RULES__DORMANT_CREDENTIAL__PERIOD", "10d")]),
    )
    .expect("loads");
    assert_eq!(
        c.rule_params
            .get("dormant_credential", "period")
            .map(|v| v.to_string()),
        Some("10d".to_owned())
    );
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let dir = std::env::temp_dir().join(format!("nhi-drift-config-u-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[kafka]\nbrokerz = \"x\"\n").expect("write");
    let err = Config::load_with_env(Some(&file), Vec::new())
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("brokerz"), "{err}");

    std::fs::write(&file, "[nonsense]\nx = 1\n").expect("write");
    let err = Config::load_with_env(Some(&file), Vec::new())
        .expect_err("unknown section")
        .to_string();
    assert!(err.contains("nonsense"), "{err}");

    let err = Config::load_with_env(None, env(&[("NHI_DRIFT_TIME__WINDOWZ", "1m")]))
        .expect_err("unknown env key")
        .to_string();
    assert!(err.contains("windowz"), "{err}");

    let rules = load_rules(Some(Path::new("queries"))).expect("rules");
    std::fs::write(&file, "[rules.unrotated_secret]\nmax_agee = \"3d\"\n").expect("write");
    let c = Config::load_with_env(Some(&file), Vec::new()).expect("parses");
    let err = c
        .check_rule_params(&rules)
        .expect_err("unknown threshold")
        .to_string();
    assert!(err.contains("rules.unrotated_secret.max_agee"), "{err}");

    std::fs::write(&file, "[time]\nwindow = \"1 minute\"\n").expect("write");
    let err = Config::load_with_env(Some(&file), Vec::new())
        .expect_err("bad duration")
        .to_string();
    assert!(err.contains("1 minute"), "{err}");
}

#[test]
fn librdkafka_properties_pass_through_with_dotted_names() {
    let dir = std::env::temp_dir().join(format!("nhi-drift-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("secured.toml");
    std::fs::write(
        &file,
        "[kafka]\nbrokers = \"kafka-1:9093,kafka-2:9093\"\n\n[kafka.properties]\n\
         \"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n\
         \"ssl.ca.location\" = \"/etc/ssl/kafka-ca.pem\"\n",
    )
    .expect("write");
    let c = Config::load_with_env(Some(&file), Vec::new()).expect("secured config");
    assert_eq!(c.kafka.brokers, "kafka-1:9093,kafka-2:9093");
    let props: Vec<(&str, &str)> = c
        .kafka
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        props,
        [
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("security.protocol", "SASL_SSL"),
            ("ssl.ca.location", "/etc/ssl/kafka-ca.pem"),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
