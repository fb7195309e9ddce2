//! Alert wire formats: the contract's JSON (§4) and OCSF Detection Finding (class 2004).

use serde_json::{Map, Value, json};

use super::{Alert, Status};
use crate::event::time::format_rfc3339;

/// Output format of alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// The contract's alert JSON.
    #[default]
    Json,
    /// OCSF 1.x Detection Finding.
    Ocsf,
}

impl AlertFormat {
    /// Renders one alert.
    pub fn render(self, alert: &Alert) -> Value {
        match self {
            AlertFormat::Json => to_json(alert),
            AlertFormat::Ocsf => to_ocsf(alert),
        }
    }
}

/// The contract §4 JSON form.
pub fn to_json(alert: &Alert) -> Value {
    let mut out = Map::new();
    out.insert("alert_id".into(), alert.alert_id.clone().into());
    out.insert("rule_id".into(), alert.rule_id.clone().into());
    out.insert("rule".into(), alert.rule.clone().into());
    out.insert("status".into(), alert.status.as_str().into());
    out.insert("severity".into(), alert.severity.as_str().into());
    out.insert("identity".into(), alert.identity.clone().into());
    for (field, value) in &alert.key {
        out.insert(field.clone(), value.clone().into());
    }
    out.insert("opened_at".into(), format_rfc3339(alert.opened_at).into());
    out.insert(
        "detected_at".into(),
        format_rfc3339(alert.detected_at).into(),
    );
    if let Some((start, end)) = alert.window {
        out.insert(
            "window".into(),
            json!({"start": format_rfc3339(start), "end": format_rfc3339(end)}),
        );
    }
    if let Some(n) = alert.occurrences {
        out.insert("occurrences".into(), n.into());
    }
    out.insert("summary".into(), alert.summary.clone().into());
    out.insert("evidence".into(), Value::Object(alert.evidence.clone()));
    out.insert(
        "owner".into(),
        json!({
            "business_owner": alert.owner.business_owner,
            "technical_custodian": alert.owner.technical_custodian,
        }),
    );
    out.insert("frameworks".into(), alert.frameworks.clone().into());
    out.insert("remediation".into(), alert.remediation.clone().into());
    Value::Object(out)
}

/// The same finding as an OCSF Detection Finding (class_uid 2004): activity 1 Create for
/// `open`, 3 Close for `resolved`; `finding_info.uid` is the `alert_id`.
pub fn to_ocsf(alert: &Alert) -> Value {
    let (activity_id, activity_name, status_id, status) = match alert.status {
        Status::Open => (1, "Create", 1, "New"),
        Status::Resolved => (3, "Close", 4, "Resolved"),
    };
    let millis = |t: i64| t.div_euclid(1_000);
    let mut resources = vec![json!({"type": "non_human_identity", "uid": alert.identity})];
    for (field, value) in &alert.key {
        resources.push(json!({"type": field, "uid": value}));
    }
    let mut finding_info = json!({
        "uid": alert.alert_id,
        "title": alert.rule,
        "desc": alert.summary,
        "analytic": {"uid": alert.rule_id, "name": alert.rule, "type_id": 1, "type": "Rule"},
        "created_time": millis(alert.opened_at),
        "first_seen_time": millis(alert.opened_at),
        "last_seen_time": millis(alert.detected_at),
        "types": alert.frameworks,
    });
    if let Some((start, end)) = alert.window {
        finding_info["src_window"] = json!({"start_time": millis(start), "end_time": millis(end)});
    }
    let class_uid = 2004;
    json!({
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": class_uid,
        "class_name": "Detection Finding",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": alert.severity.ocsf_id(),
        "severity": alert.severity.as_str(),
        "status_id": status_id,
        "status": status,
        "time": millis(alert.detected_at),
        "message": alert.summary,
        "finding_info": finding_info,
        "resources": resources,
        "evidences": [{"data": Value::Object(alert.evidence.clone())}],
        "remediation": {"desc": alert.remediation},
        "count": alert.occurrences.map(|n| n + 1),
        "unmapped": {
            "owner": {
                "business_owner": alert.owner.business_owner,
                "technical_custodian": alert.owner.technical_custodian,
            },
        },
        "metadata": {
            "version": "1.3.0",
            "product": {"name": "nhi-drift", "vendor_name": "nhi-drift", "version": env!("CARGO_PKG_VERSION")},
            "uid": alert.alert_id,
        },
    })
}
