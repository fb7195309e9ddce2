//! Configuration (contract §5): embedded `config/default.toml`, then `--config FILE`,
//! then `NHI_DRIFT_<SECTION>__<KEY>` environment variables. Unknown keys are errors that
//! name the key; rule thresholds live under `rules.<rule name>.<param>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::alert::format::AlertFormat;
use crate::engine::rule::{ParamValue, Rule, RuleParams};
use crate::event::Micros;
use crate::event::time::parse_duration;
use crate::pipeline::EvalMode;

/// The embedded defaults.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// A configuration problem; the message names the key or file.
#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(pub String);

/// A duration written `90d`, `24h`, `5m`, `30s` or `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub Micros);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Duration).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration (use e.g. 90d, 24h, 5m, 30s, 250ms)"
            ))
        })
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub topics: Topics,
    pub http: HttpConfig,
    /// The `/v1` API on `http.listen` (contract §9).
    pub api: ApiConfig,
    pub checkpoint: CheckpointConfig,
    pub time: TimeConfig,
    pub input: InputConfig,
    pub alerts: AlertsConfig,
    pub engine: EngineConfig,
    pub inventory: InventoryConfig,
    pub log: LogConfig,
    /// Classification for the adapters of real-world sources (contract §7).
    pub adapt: crate::adapt::AdaptConfig,
    /// `[[sources]]`: topics of real-world records adapted before the pipeline.
    #[serde(default)]
    pub sources: Vec<crate::service::adapted::SourceConfig>,
    #[serde(rename = "rules")]
    rules_raw: BTreeMap<String, config::Value>,
    /// Parsed `rules.*` thresholds.
    #[serde(skip)]
    pub rule_params: RuleParams,
    /// `rules.dir`: load rules from here instead of the bundled ones.
    #[serde(skip)]
    pub rules_dir: Option<PathBuf>,
}

/// Kafka connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, or `embedded` for the in-process broker.
    pub brokers: String,
    /// Consumer group id.
    pub group_id: String,
    /// Partitions of each topic the embedded broker creates.
    pub embedded_partitions: i32,
    /// Kafka transactions: alerts, dead letters, task state and consumed offsets of one
    /// checkpoint interval are committed together or not at all (README, exactly-once).
    #[serde(default)]
    pub exactly_once: bool,
    /// The producer's `transactional.id` when `exactly_once` is set: stable across
    /// restarts and unique per instance. Empty: `<group_id>-<host name>`.
    #[serde(default)]
    pub transactional_id: String,
    /// librdkafka properties passed to every client as they are (`security.protocol`,
    /// `sasl.*`, `ssl.*`, …), e.g. `[kafka.properties]` `"security.protocol" = "SASL_SSL"`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// The `transactional.id` an exactly-once instance uses: `transactional_id`, or
    /// `<group_id>-<host name>`.
    pub fn transactional_id(&self) -> String {
        if !self.transactional_id.is_empty() {
            return self.transactional_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{}-{host}", self.group_id)
    }
}

/// Topic names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    pub identity: String,
    pub credential: String,
    pub toolcall: String,
    pub alerts: String,
    pub deadletter: String,
}

/// HTTP endpoint for metrics and health.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: String,
}

/// The `/v1` API beside `/metrics` (contract §9).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer token `/v1` requires when `http.listen` is not a loopback address; empty
    /// means none is set, and `/v1` then refuses every request there.
    pub token: String,
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Window and resolved findings `/v1/findings` keeps (open state findings: all).
    pub findings_kept: usize,
    /// Largest page of `/v1/findings` (`limit`).
    pub max_page: usize,
    /// What a finding of each severity (or rule) makes of a decision.
    pub decide: crate::ask::decide::Verdicts,
}

/// Checkpoints of state and offsets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Directory for checkpoint files.
    pub dir: PathBuf,
    /// Wall-clock interval between checkpoints.
    pub interval: Duration,
}

/// Event-time settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeConfig {
    /// Tumbling window size.
    pub window: Duration,
    /// Watermark lag behind the largest event time.
    pub allowed_lateness: Duration,
    /// How long (wall clock) a Kafka partition read to its end must receive nothing
    /// before it stops holding the watermark back.
    pub partition_idle: Duration,
    /// `off`, or how long all input must be idle (wall clock) before event time follows
    /// the wall clock (see README, "Time without traffic").
    pub idle_advance: IdleAdvance,
}

/// The idle-advance policy: `off`, or the idle wall-clock time after which it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleAdvance(pub Option<std::time::Duration>);

impl<'de> Deserialize<'de> for IdleAdvance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let us = off_or_duration(&String::deserialize(d)?, 1).map_err(serde::de::Error::custom)?;
        Ok(IdleAdvance(
            us.map(|us| std::time::Duration::from_micros(us as u64)),
        ))
    }
}

/// `off`, or a duration of at least zero (`input.max_future`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffOrDuration(pub Option<Micros>);

impl<'de> Deserialize<'de> for OffOrDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        off_or_duration(&String::deserialize(d)?, 0)
            .map(OffOrDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses `off` (`None`) or a duration of at least `min` microseconds.
fn off_or_duration(text: &str, min: Micros) -> Result<Option<Micros>, String> {
    if text == "off" {
        return Ok(None);
    }
    match parse_duration(text) {
        Some(us) if us >= min => Ok(Some(us)),
        _ => {
            let what = if min > 0 {
                "a positive duration"
            } else {
                "a duration"
            };
            Err(format!("`{text}` is neither `off` nor {what} (e.g. 1m)"))
        }
    }
}

/// Input limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Largest accepted record in bytes.
    pub max_event_bytes: usize,
    /// `off`, or how far ahead of the wall clock an event's time may be before it is
    /// dead-lettered as `future_time`.
    pub max_future: OffOrDuration,
    /// Rows (identity snapshots and activity) gathered before the rules run; larger
    /// batches run the queries less often. Results never depend on it.
    pub batch_rows: usize,
}

/// Alert output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// `json` or `ocsf`.
    pub format: AlertFormat,
    /// Window-rule repeat suppression period (event time).
    pub dedup_period: Duration,
}

/// Inventory state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// `off`, or how long (event time) after it ended a credential, a completed task or an
    /// offboarded identity holding nothing is forgotten (contract §2.2).
    pub forget_after: OffOrDuration,
}

/// Rule evaluation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// `incremental` (default) or `eager`: when an identity's state rules run again.
    pub eval: EvalMode,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// Default level filter (`RUST_LOG` overrides).
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Defaults, then `file`, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!("{}: no such file", path.display())));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("NHI_DRIFT_"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("NHI_DRIFT")
                .prefix_separator("_")
                .separator("__")
                .source(Some(env)),
        );
        let merged = builder.build().map_err(|e| ConfigError(e.to_string()))?;
        let mut cfg: Config = merged
            .try_deserialize()
            .map_err(|e| ConfigError(e.to_string()))?;
        cfg.parse_rules_section()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn parse_rules_section(&mut self) -> Result<(), ConfigError> {
        for (name, value) in std::mem::take(&mut self.rules_raw) {
            if name == "dir" {
                let dir = value
                    .into_string()
                    .map_err(|_| ConfigError("`rules.dir` must be a string".into()))?;
                self.rules_dir = Some(PathBuf::from(dir));
                continue;
            }
            let table = value.into_table().map_err(|_| {
                ConfigError(format!(
                    "`rules.{name}` must be a table of thresholds, e.g. [rules.{name}]"
                ))
            })?;
            for (param, value) in table {
                let parsed = ParamValue::from_config(&value).ok_or_else(|| {
                    ConfigError(format!(
                        "`rules.{name}.{param}` must be a duration string or an integer"
                    ))
                })?;
                self.rule_params.insert(&name, &param, parsed);
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.time.window.0 <= 0 {
            return Err(ConfigError("`time.window` must be positive".into()));
        }
        if self.kafka.embedded_partitions < 1 {
            return Err(ConfigError(
                "`kafka.embedded_partitions` must be at least 1".into(),
            ));
        }
        if self.time.partition_idle.0 < 0 {
            return Err(ConfigError(
                "`time.partition_idle` must not be negative".into(),
            ));
        }
        if self.checkpoint.interval.0 <= 0 {
            return Err(ConfigError("`checkpoint.interval` must be positive".into()));
        }
        if self.input.batch_rows == 0 {
            return Err(ConfigError("`input.batch_rows` must be positive".into()));
        }
        self.adapt.validate().map_err(ConfigError)?;
        if self.input.max_event_bytes == 0 {
            return Err(ConfigError(
                "`input.max_event_bytes` must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Checks every `rules.<name>.<param>` against the loaded rules: a threshold no rule
    /// uses is a typo and is named.
    pub fn check_rule_params(&self, rules: &[Rule]) -> Result<(), ConfigError> {
        for (rule_name, param) in self.rule_params.keys() {
            let Some(rule) = rules.iter().find(|r| r.name == rule_name) else {
                return Err(ConfigError(format!(
                    "unknown key `rules.{rule_name}`: no rule is named `{rule_name}`"
                )));
            };
            if !rule.params().contains(param) {
                return Err(ConfigError(format!(
                    "unknown key `rules.{rule_name}.{param}`: {} uses {}",
                    rule.id,
                    if rule.params().is_empty() {
                        "no thresholds".to_owned()
                    } else {
                        rule.params().into_iter().collect::<Vec<_>>().join(", ")
                    }
                )));
            }
        }
        Ok(())
    }
}
