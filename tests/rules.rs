//! Every rule's fixtures (`tests/fixtures/rules/<RULE-ID>/<case>/`), the same cases
//! `nhi-drift rules test` runs. A new rule is covered by adding its folder; no Rust needed.

use std::path::Path;

use nhi_drift::config::Config;
use nhi_drift::engine::rule::load_rules;

#[tokio::test]
async fn every_rule_fixture_passes() {
    let config = Config::load_with_env(None, Vec::new()).expect("default config");
    let rules = load_rules(Some(Path::new("queries"))).expect("rules load");
    let outcomes =
        nhi_drift::fixtures::run_all(Path::new("tests/fixtures/rules"), &config, &rules).await;
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.failure
                .as_ref()
                .map(|why| format!("{} {}\n  {}", o.rule_id, o.case, why.replace('\n', "\n  ")))
        })
        .collect();
    assert!(
        outcomes.len() >= 36,
        "expected fixtures for every rule, found {}",
        outcomes.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_rule_has_a_positive_and_a_negative_case() {
    let rules = load_rules(Some(Path::new("queries"))).expect("rules load");
    for rule in &rules {
        let dir = Path::new("tests/fixtures/rules").join(&rule.id);
        let (mut positive, mut negative) = (0, 0);
        for case in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let expected = case.expect("dir entry").path().join("expected.jsonl");
            let text = std::fs::read_to_string(&expected).expect("expected.jsonl");
            if text.trim().is_empty() {
                negative += 1;
            } else {
                positive += 1;
            }
        }
        assert!(
            positive > 0 && negative > 0,
            "{}: {positive} positive, {negative} negative cases",
            rule.id
        );
    }
}
