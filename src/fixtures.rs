//! Rule fixtures: `tests/fixtures/rules/<RULE-ID>/<case>/` holding `events.jsonl`,
//! `expected.jsonl` (this rule's alerts, in order) and `case.toml` (`description`,
//! optional `as_of`). Used by `nhi-drift rules test` and by the test suite.
//!
//! Each expected alert is compared on `rule_id`, `status`, `identity`, `opened_at`, the
//! entity-key fields, `occurrences`, and any further field it names (`detected_at`,
//! `window`, `severity`, …). Timestamps compare as instants.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::alert::format::AlertFormat;
use crate::config::Config;
use crate::engine::rule::{KEY_FIELDS, Rule};
use crate::event::Decoder;
use crate::event::time::{format_rfc3339, parse_rfc3339};
use crate::pipeline::{Options, Pipeline};
use crate::replay::{Sinks, replay};

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    pub rule_id: String,
    pub case: String,
    /// `None` when the case passed; otherwise what differed.
    pub failure: Option<String>,
}

/// Set to rewrite each failing case's `expected.jsonl` with what the engine gives (the
/// same fields as before); review the diff before committing it.
pub const UPDATE_ENV: &str = "UPDATE_FIXTURES";

/// Fields always compared.
const ALWAYS: [&str; 5] = ["rule_id", "status", "identity", "opened_at", "occurrences"];
/// Timestamp fields, compared as instants.
const TIMES: [&str; 3] = ["opened_at", "detected_at", "window"];

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    /// What the case proves; for readers of the fixture.
    #[serde(rename = "description")]
    _description: Option<String>,
    as_of: Option<String>,
}

/// Runs every case under `root`; rules without a fixture folder fail too. The rules are
/// planned once for all cases.
pub async fn run_all(root: &Path, config: &Config, rules: &[Rule]) -> Vec<CaseOutcome> {
    let mut outcomes = Vec::new();
    let mut pipeline = match Pipeline::new(
        Options::from_config(config),
        rules.to_vec(),
        &config.rule_params,
    )
    .await
    {
        Ok(pipeline) => pipeline,
        Err(error) => {
            return vec![CaseOutcome {
                rule_id: "-".into(),
                case: "-".into(),
                failure: Some(error.to_string()),
            }];
        }
    };
    let known: BTreeSet<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    let mut seen = BTreeSet::new();
    for rule_dir in sorted_dirs(root) {
        let rule_id = file_name(&rule_dir);
        if !known.contains(rule_id.as_str()) {
            outcomes.push(CaseOutcome {
                rule_id: rule_id.clone(),
                case: "-".into(),
                failure: Some(format!("{}: no rule has this id", rule_dir.display())),
            });
            continue;
        }
        seen.insert(rule_id.clone());
        for case_dir in sorted_dirs(&rule_dir) {
            let failure = run_case(&case_dir, &rule_id, config, &mut pipeline)
                .await
                .err();
            outcomes.push(CaseOutcome {
                rule_id: rule_id.clone(),
                case: file_name(&case_dir),
                failure,
            });
        }
    }
    for rule in rules {
        if !seen.contains(&rule.id) {
            outcomes.push(CaseOutcome {
                rule_id: rule.id.clone(),
                case: "-".into(),
                failure: Some(format!(
                    "no fixtures: add {}/{}/<case>/",
                    root.display(),
                    rule.id
                )),
            });
        }
    }
    outcomes
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Replays one case through `pipeline` (reset first) and returns the alerts in JSON form.
pub async fn replay_case(
    case_dir: &Path,
    config: &Config,
    pipeline: &mut Pipeline,
) -> Result<Vec<Value>, String> {
    let case: CaseFile = match std::fs::read_to_string(case_dir.join("case.toml")) {
        Ok(text) => toml::from_str(&text).map_err(|e| format!("case.toml: {e}"))?,
        Err(_) => CaseFile::default(),
    };
    let as_of = match &case.as_of {
        Some(text) => Some(
            parse_rfc3339(text)
                .ok_or_else(|| format!("case.toml: as_of `{text}` is not RFC 3339"))?,
        ),
        None => None,
    };
    pipeline.reset();
    let mut out = Vec::new();
    let mut sinks = Sinks {
        format: AlertFormat::Json,
        alerts: &mut out,
        dead_letters: Some(&mut std::io::sink()),
    };
    let files = [case_dir.join("events.jsonl")];
    replay(
        pipeline,
        &files,
        as_of,
        &Decoder::from_config(config),
        &mut sinks,
        |_, _| {},
    )
    .await
    .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect()
}

async fn run_case(
    case_dir: &Path,
    rule_id: &str,
    config: &Config,
    pipeline: &mut Pipeline,
) -> Result<(), String> {
    let expected_text = std::fs::read_to_string(case_dir.join("expected.jsonl"))
        .map_err(|e| format!("{}/expected.jsonl: {e}", case_dir.display()))?;
    let expected: Vec<Map<String, Value>> = expected_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| match serde_json::from_str(l) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(format!("expected.jsonl line {}: not a JSON object", i + 1)),
        })
        .collect::<Result<_, _>>()?;
    let actual: Vec<Map<String, Value>> = replay_case(case_dir, config, pipeline)
        .await?
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(m) if m.get("rule_id").and_then(Value::as_str) == Some(rule_id) => {
                Some(m)
            }
            _ => None,
        })
        .collect();
    let extra: BTreeSet<String> = expected.iter().flat_map(|m| m.keys().cloned()).collect();
    let project = |m: &Map<String, Value>| -> Map<String, Value> {
        m.iter()
            .filter(|(k, _)| {
                ALWAYS.contains(&k.as_str())
                    || KEY_FIELDS.contains(&k.as_str())
                    || extra.contains(k.as_str())
            })
            .map(|(k, v)| (k.clone(), normalise(k, v)))
            .collect()
    };
    let want: Vec<Map<String, Value>> = expected
        .iter()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), normalise(k, v)))
                .collect()
        })
        .collect();
    let got: Vec<Map<String, Value>> = actual.iter().map(project).collect();
    if want == got {
        return Ok(());
    }
    if std::env::var_os(UPDATE_ENV).is_some() {
        let text: String = got
            .iter()
            .map(|m| format!("{}\n", Value::Object(m.clone())))
            .collect();
        return std::fs::write(case_dir.join("expected.jsonl"), text)
            .map_err(|e| format!("{}/expected.jsonl: {e}", case_dir.display()));
    }
    let show = |list: &[Map<String, Value>]| {
        if list.is_empty() {
            "    (none)".to_owned()
        } else {
            list.iter()
                .map(|m| format!("    {}", Value::Object(m.clone())))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    Err(format!(
        "expected:\n{}\n  got:\n{}",
        show(&want),
        show(&got)
    ))
}

fn normalise(key: &str, value: &Value) -> Value {
    if !TIMES.contains(&key) {
        return value.clone();
    }
    match value {
        Value::String(s) => {
            parse_rfc3339(s).map_or_else(|| value.clone(), |t| format_rfc3339(t).into())
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => {
                            parse_rfc3339(s).map_or_else(|| v.clone(), |t| format_rfc3339(t).into())
                        }
                        other => other.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}
