//! Rule files: one `queries/<name>.sql` per rule, a metadata header of `-- key: value`
//! comment lines, then the query. `${param}` in the query is a threshold from config
//! (`rules.<name>.<param>`); `{column}` in the summary is filled from the result row.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::event::time::{format_duration, parse_duration};

/// Whether a rule judges the inventory (state) or one window's events (window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    State,
    Window,
}

impl RuleKind {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::State => "state",
            RuleKind::Window => "window",
        }
    }
}

/// Alert severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// OCSF `severity_id`.
    pub fn ocsf_id(self) -> u8 {
        match self {
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }
}

/// Entity-key fields an alert may carry besides `identity`.
pub const KEY_FIELDS: [&str; 5] = ["credential", "scope", "tool", "vendor", "principal"];

/// A loaded rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id, e.g. `NHI-ROT-001`.
    pub id: String,
    /// Short name, e.g. `unrotated_secret`; also its config section `rules.<name>`.
    pub name: String,
    pub kind: RuleKind,
    pub severity: Severity,
    /// Entity-key columns besides `identity` (subset of [`KEY_FIELDS`]).
    pub key: Vec<String>,
    pub frameworks: Vec<String>,
    /// Summary template with `{column}` / `{param}` placeholders.
    pub summary: String,
    pub remediation: String,
    /// The query as written, `${param}` placeholders included.
    pub sql: String,
    /// Where it was loaded from, for error messages.
    pub path: PathBuf,
    /// The posture gauge its open findings count toward (`-- posture:` header), if any.
    pub posture: Option<Posture>,
}

/// Posture gauges fed by a rule's open findings (the optional `-- posture:` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posture {
    /// `nhi_drift_credentials_rotation_overdue` (and its ratio to active credentials).
    RotationOverdue,
    /// `nhi_drift_identities_recertification_overdue`.
    RecertificationOverdue,
}

impl Posture {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Posture::RotationOverdue => "rotation_overdue",
            Posture::RecertificationOverdue => "recertification_overdue",
        }
    }
}

/// A rule file that cannot be loaded; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RuleError {
    /// The offending file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl RuleError {
    /// An error about `path`.
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        RuleError {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}

impl Rule {
    /// Parses a rule file's text.
    pub fn parse(path: &Path, text: &str) -> Result<Rule, RuleError> {
        let mut header = BTreeMap::new();
        let mut body_start = 0;
        for line in text.lines() {
            let trimmed = line.trim();
            let Some(comment) = trimmed.strip_prefix("--") else {
                if !trimmed.is_empty() {
                    break;
                }
                body_start += line.len() + 1;
                continue;
            };
            body_start += line.len() + 1;
            if let Some((key, value)) = comment.split_once(':') {
                let key = key.trim();
                if HEADER_KEYS.contains(&key)
                    && header.insert(key, value.trim().to_owned()).is_some()
                {
                    return Err(RuleError::new(path, format!("header `{key}` given twice")));
                }
            }
        }
        let sql = text
            .get(body_start.min(text.len())..)
            .unwrap_or("")
            .trim()
            .to_owned();
        if sql.is_empty() {
            return Err(RuleError::new(path, "no query after the header"));
        }
        let posture = match header.remove("posture").as_deref() {
            None => None,
            Some("rotation_overdue") => Some(Posture::RotationOverdue),
            Some("recertification_overdue") => Some(Posture::RecertificationOverdue),
            Some(other) => {
                return Err(RuleError::new(
                    path,
                    format!(
                        "posture `{other}` is not one of: rotation_overdue, recertification_overdue"
                    ),
                ));
            }
        };
        let mut take = |key: &str| {
            header
                .remove(key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| RuleError::new(path, format!("header `-- {key}:` is missing")))
        };
        let id = take("id")?;
        let name = take("name")?;
        let kind = match take("kind")?.as_str() {
            "state" => RuleKind::State,
            "window" => RuleKind::Window,
            other => {
                return Err(RuleError::new(
                    path,
                    format!("kind `{other}` is not one of: state, window"),
                ));
            }
        };
        let severity = match take("severity")?.as_str() {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            other => {
                return Err(RuleError::new(
                    path,
                    format!("severity `{other}` is not one of: low, medium, high, critical"),
                ));
            }
        };
        let key_text = take("key")?;
        let mut key = Vec::new();
        for field in key_text
            .split(',')
            .map(str::trim)
            .filter(|f| *f != "identity")
        {
            if !KEY_FIELDS.contains(&field) {
                return Err(RuleError::new(
                    path,
                    format!(
                        "key field `{field}` is not one of: identity, {}",
                        KEY_FIELDS.join(", ")
                    ),
                ));
            }
            key.push(field.to_owned());
        }
        let frameworks = take("frameworks")?
            .split(',')
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        let rule = Rule {
            id,
            name,
            kind,
            severity,
            key,
            frameworks,
            summary: take("summary")?,
            remediation: take("remediation")?,
            sql,
            path: path.to_owned(),
            posture,
        };
        if !rule
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(RuleError::new(
                path,
                "name must be lower_snake_case (it is also the config section name)",
            ));
        }
        Ok(rule)
    }

    /// The `${param}` names the query uses, sorted.
    pub fn params(&self) -> BTreeSet<String> {
        placeholders(&self.sql, "${", "}").into_iter().collect()
    }

    /// The query with every `${param}` replaced by its SQL literal.
    pub fn render_sql(&self, params: &RuleParams) -> Result<String, RuleError> {
        let mut sql = self.sql.clone();
        for name in self.params() {
            let value = params.get(&self.name, &name).ok_or_else(|| {
                RuleError::new(
                    &self.path,
                    format!(
                        "query uses ${{{name}}} but config has no `rules.{}.{name}`",
                        self.name
                    ),
                )
            })?;
            sql = sql.replace(&format!("${{{name}}}"), &value.sql_literal());
        }
        Ok(sql)
    }
}

/// Header keys a rule file may set.
const HEADER_KEYS: [&str; 10] = [
    "id",
    "name",
    "kind",
    "severity",
    "key",
    "frameworks",
    "summary",
    "remediation",
    "description",
    "posture",
];

/// The `open…close` delimited names in `text`, e.g. `${x}` or `{x}`.
pub fn placeholders(text: &str, open: &str, close: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(close) else { break };
        let name = &after[..end];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.push(name.to_owned());
        }
        rest = &after[end..];
    }
    names
}

/// A rule threshold from config.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A duration in microseconds (written `90d`, `24h`, …).
    Duration(i64),
    Integer(i64),
    Text(String),
}

impl ParamValue {
    /// Interprets a config value: duration strings become durations.
    pub fn from_config(value: &config::Value) -> Option<ParamValue> {
        use config::ValueKind;
        match &value.kind {
            ValueKind::I64(i) => Some(ParamValue::Integer(*i)),
            ValueKind::U64(u) => i64::try_from(*u).ok().map(ParamValue::Integer),
            ValueKind::I128(i) => i64::try_from(*i).ok().map(ParamValue::Integer),
            ValueKind::U128(u) => i64::try_from(*u).ok().map(ParamValue::Integer),
            ValueKind::String(s) => Some(match parse_duration(s) {
                Some(d) => ParamValue::Duration(d),
                None => match s.parse::<i64>() {
                    Ok(i) => ParamValue::Integer(i),
                    Err(_) => ParamValue::Text(s.clone()),
                },
            }),
            _ => None,
        }
    }

    /// The value as a SQL literal.
    pub fn sql_literal(&self) -> String {
        match self {
            ParamValue::Duration(micros) if micros % 1_000_000 == 0 => {
                format!("INTERVAL '{} seconds'", micros / 1_000_000)
            }
            ParamValue::Duration(micros) => format!("INTERVAL '{micros} microseconds'"),
            ParamValue::Integer(i) => i.to_string(),
            ParamValue::Text(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }

    /// The value as a JSON evidence value.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ParamValue::Duration(micros) => format_duration(*micros).into(),
            ParamValue::Integer(i) => (*i).into(),
            ParamValue::Text(s) => s.clone().into(),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Duration(micros) => f.write_str(&format_duration(*micros)),
            ParamValue::Integer(i) => write!(f, "{i}"),
            ParamValue::Text(s) => f.write_str(s),
        }
    }
}

/// Thresholds of every rule: `rules.<rule name>.<param>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleParams {
    values: BTreeMap<String, BTreeMap<String, ParamValue>>,
}

impl RuleParams {
    /// Sets one threshold.
    pub fn insert(&mut self, rule: &str, param: &str, value: ParamValue) {
        self.values
            .entry(rule.to_owned())
            .or_default()
            .insert(param.to_owned(), value);
    }

    /// One threshold.
    pub fn get(&self, rule: &str, param: &str) -> Option<&ParamValue> {
        self.values.get(rule)?.get(param)
    }

    /// The thresholds of one rule.
    pub fn of_rule(&self, rule: &str) -> BTreeMap<String, ParamValue> {
        self.values.get(rule).cloned().unwrap_or_default()
    }

    /// Every `rules.<rule>.<param>` key present.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .flat_map(|(r, ps)| ps.keys().map(move |p| (r.as_str(), p.as_str())))
    }
}

/// Rule files bundled into the binary from `queries/` at build time.
pub const BUNDLED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/bundled_rules.rs"));

/// Loads rules from a directory (`*.sql`, sorted by file name), or the bundled ones.
pub fn load_rules(dir: Option<&Path>) -> Result<Vec<Rule>, RuleError> {
    let mut files: Vec<(PathBuf, String)> = match dir {
        None => BUNDLED
            .iter()
            .map(|(name, text)| (Path::new("queries").join(name), (*text).to_owned()))
            .collect(),
        Some(dir) => {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| RuleError::new(dir, format!("cannot read rules directory: {e}")))?;
            let mut files = Vec::new();
            for entry in entries {
                let path = entry
                    .map_err(|e| RuleError::new(dir, format!("cannot read rules directory: {e}")))?
                    .path();
                if path.extension().is_some_and(|e| e == "sql") {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| RuleError::new(&path, format!("cannot read: {e}")))?;
                    files.push((path, text));
                }
            }
            files
        }
    };
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rules = Vec::with_capacity(files.len());
    let mut ids = BTreeMap::new();
    for (path, text) in files {
        let rule = Rule::parse(&path, &text)?;
        for (what, value) in [("id", &rule.id), ("name", &rule.name)] {
            if let Some(other) = ids.insert(format!("{what}:{value}"), path.clone()) {
                return Err(RuleError::new(
                    &path,
                    format!("{what} `{value}` is also used by {}", other.display()),
                ));
            }
        }
        rules.push(rule);
    }
    // Stable evaluation and output order: by rule id.
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "-- id: NHI-TEST-001\n-- name: test_rule\n-- kind: state\n-- severity: high\n-- key: credential\n-- frameworks: A:1, B:2\n-- summary: {credential} older than {max_age}\n-- remediation: Fix it.\n\nSELECT sid FROM credentials WHERE issued_at + ${max_age} < now()\n";

    #[test]
    fn parses_header_and_renders_params() {
        let rule = Rule::parse(Path::new("t.sql"), TEXT).expect("parses");
        assert_eq!(rule.id, "NHI-TEST-001");
        assert_eq!(rule.key, vec!["credential"]);
        assert_eq!(rule.frameworks, vec!["A:1", "B:2"]);
        assert!(rule.sql.starts_with("SELECT"));
        let mut params = RuleParams::default();
        assert!(rule.render_sql(&params).is_err());
        params.insert(
            "test_rule",
            "max_age",
            ParamValue::Duration(90 * 86_400_000_000),
        );
        let sql = rule.render_sql(&params).expect("renders");
        assert!(sql.contains("INTERVAL '7776000 seconds'"), "{sql}");
    }

    #[test]
    fn missing_header_names_the_file() {
        let err = Rule::parse(Path::new("queries/x.sql"), "-- id: X\nSELECT 1").expect_err("bad");
        assert!(err.to_string().starts_with("queries/x.sql:"), "{err}");
    }

    #[test]
    fn bundled_rules_load() {
        let rules = load_rules(None).expect("bundled rules load");
        assert!(rules.len() >= 18);
        let posture = |p| rules.iter().filter(|r| r.posture == Some(p)).count();
        assert_eq!(posture(Posture::RotationOverdue), 1);
        assert_eq!(posture(Posture::RecertificationOverdue), 1);
    }

    #[test]
    fn posture_is_optional_and_checked() {
        let rule = Rule::parse(Path::new("t.sql"), TEXT).expect("parses");
        assert_eq!(rule.posture, None);
        let tagged = TEXT.replace(
            "-- remediation:",
            "-- posture: rotation_overdue\n-- remediation:",
        );
        let rule = Rule::parse(Path::new("t.sql"), &tagged).expect("parses");
        assert_eq!(rule.posture, Some(Posture::RotationOverdue));
        let bad = TEXT.replace("-- remediation:", "-- posture: weather\n-- remediation:");
        let err = Rule::parse(Path::new("t.sql"), &bad).expect_err("unknown posture");
        assert!(err.to_string().contains("posture `weather`"), "{err}");
    }
}
