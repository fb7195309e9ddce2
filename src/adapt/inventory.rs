//! A declared inventory (`inventory`, YAML or CSV): what no log carries — each identity's
//! kind, tier, owners, approval and baseline, and departed principals and offboarded
//! vendors. Without it the governance rules (NHI-GOV-001/003) fire for every identity.
//!
//! YAML:
//! ```yaml
//! time: 2023-07-01T00:00:00Z          # when these declarations hold (default for `at`)
//! identities:
//!   - identity: arn:aws:iam::123456789012:role/deployer
//!     kind: workload                  # service_account | api_client | ai_agent | workload
//!     tier: privileged                # draft_only | tool_executing | privileged
//!     name: deployer
//!     workflow: release
//!     vendors: [github]
//!     business_owner: alice@example.com
//!     technical_custodian: bob@example.com
//!     approved: {by: carol@example.com, scopes: [arn:aws:iam::aws:policy/ReadOnlyAccess], tools: [s3:GetObject]}
//!     recertified: {by: carol@example.com, at: 2023-09-01T00:00:00Z}
//! departed:
//!   - {principal: dave@example.com, at: 2023-07-05T00:00:00Z}
//! offboarded_vendors:
//!   - {vendor: acme, at: 2023-07-06T00:00:00Z}
//! ```
//! CSV: a header naming any of `identity, at, kind, tier, name, workflow, vendors,
//! business_owner, technical_custodian, approver, approved_at, scopes, tools, departed,
//! vendor_offboarded`; lists separated by `;`. A row with `departed` (or
//! `vendor_offboarded`) and no `identity` declares a departure (an offboarding).

use serde_json::{Map, Value};

use super::framing::Framed;
use super::{Context, MapResult, Mapped, Out, Skip, SkipReason, time};
use crate::event::EventType;
use crate::event::time::format_rfc3339;

/// The records of an inventory file: YAML (a mapping with `identities`, `departed`,
/// `offboarded_vendors`) or CSV.
pub fn records(bytes: &[u8]) -> Vec<Framed> {
    let text = String::from_utf8_lossy(bytes);
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let looks_csv = first.contains(',') && first.to_ascii_lowercase().contains("identity")
        || first.trim_start().starts_with("departed,");
    if looks_csv {
        return csv_records(&text);
    }
    match serde_norway::from_str::<Value>(&text) {
        Ok(Value::Object(doc)) => yaml_records(&doc),
        Ok(Value::Null) => Vec::new(),
        Ok(_) => vec![Err("inventory is not a mapping".into())],
        Err(e) => vec![Err(format!(
            "not valid YAML: {}",
            e.to_string().chars().take(160).collect::<String>()
        ))],
    }
}

fn yaml_records(doc: &Map<String, Value>) -> Vec<Framed> {
    let default_time = doc.get("time").cloned();
    let mut out = Vec::new();
    for (section, key) in [
        ("identities", "identity"),
        ("departed", "departed"),
        ("offboarded_vendors", "vendor_offboarded"),
    ] {
        let Some(items) = doc.get(section) else {
            continue;
        };
        let Some(items) = items.as_array() else {
            out.push(Err(format!("`{section}` is not a list")));
            continue;
        };
        for item in items {
            let Some(map) = item.as_object() else {
                out.push(Err(format!("an entry of `{section}` is not a mapping")));
                continue;
            };
            let mut record = map.clone();
            if key != "identity" {
                // `departed: [{principal: x}]` → `{departed: x}`.
                let name = if key == "departed" {
                    "principal"
                } else {
                    "vendor"
                };
                if let Some(v) = record.remove(name) {
                    record.insert(key.into(), v);
                }
            }
            if !record.contains_key("at")
                && let Some(t) = &default_time
            {
                record.insert("at".into(), t.clone());
            }
            out.push(Ok(Value::Object(record)));
        }
    }
    out
}

fn csv_records(text: &str) -> Vec<Framed> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return vec![Err(format!("CSV header: {e}"))],
    };
    let mut out = Vec::new();
    for row in reader.records() {
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                out.push(Err(format!("CSV row: {e}")));
                continue;
            }
        };
        let mut record = Map::new();
        let mut approved = Map::new();
        for (h, v) in headers.iter().zip(row.iter()) {
            if v.is_empty() {
                continue;
            }
            let list = || {
                Value::Array(
                    v.split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                )
            };
            match h.to_ascii_lowercase().as_str() {
                "approver" => {
                    approved.insert("by".into(), v.into());
                }
                "approved_at" => {
                    approved.insert("at".into(), v.into());
                }
                "scopes" => {
                    approved.insert("scopes".into(), list());
                }
                "tools" => {
                    approved.insert("tools".into(), list());
                }
                "vendors" => {
                    record.insert("vendors".into(), list());
                }
                other => {
                    record.insert(other.to_owned(), v.into());
                }
            }
        }
        if !approved.is_empty() {
            record.insert("approved".into(), Value::Object(approved));
        }
        out.push(Ok(Value::Object(record)));
    }
    out
}

fn string(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strings(v: &Value, key: &str) -> Option<Vec<String>> {
    match v.get(key)? {
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
        ),
        Value::String(s) => Some(
            s.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

fn time_of(v: &Value, key: &str) -> Result<Option<i64>, Skip> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(t) => time::parse(t)
            .map(Some)
            .ok_or_else(|| Skip::new(SkipReason::ParseError, format!("`{key}` is not a time"))),
    }
}

/// Maps one inventory entry.
pub fn map(record: &Value, _ctx: &Context<'_>) -> MapResult {
    let at = time_of(record, "at")?;
    if let Some(principal) = string(record, "departed") {
        let at = at.ok_or_else(|| Skip::new(SkipReason::MissingTime, "departed without `at`"))?;
        return Ok(Mapped {
            record_id: format!("departed:{principal}@{}", format_rfc3339(at)),
            events: vec![
                Out::global(EventType::PrincipalDeparted, at).with("principal", principal),
            ],
        });
    }
    if let Some(vendor) = string(record, "vendor_offboarded") {
        let at = at.ok_or_else(|| Skip::new(SkipReason::MissingTime, "vendor without `at`"))?;
        return Ok(Mapped {
            record_id: format!("vendor:{vendor}@{}", format_rfc3339(at)),
            events: vec![Out::global(EventType::VendorOffboarded, at).with("vendor", vendor)],
        });
    }
    let Some(identity) = string(record, "identity") else {
        return Err(Skip::new(SkipReason::ParseError, "entry names no identity"));
    };
    let at = at.ok_or_else(|| Skip::new(SkipReason::MissingTime, "no `at` and no `time`"))?;
    let mut events = Vec::new();
    // `identity.registered` needs a kind; without any registration field the identity
    // exists from its first event instead.
    let declared = ["kind", "tier", "name", "workflow", "vendors"]
        .iter()
        .any(|k| record.get(k).is_some_and(|v| !v.is_null()));
    if declared {
        let kind = string(record, "kind")
            .ok_or_else(|| Skip::new(SkipReason::ParseError, "registration fields need `kind`"))?;
        let mut registered = Out::new(EventType::IdentityRegistered, at, &identity)
            .with("kind", kind)
            .with_opt("tier", string(record, "tier"))
            .with_opt("name", string(record, "name"))
            .with_opt("workflow", string(record, "workflow"));
        if let Some(vendors) = strings(record, "vendors") {
            registered = registered.with_list("vendors", vendors);
        }
        events.push(registered);
    }
    let (owner, custodian) = (
        string(record, "business_owner"),
        string(record, "technical_custodian"),
    );
    if owner.is_some() || custodian.is_some() {
        events.push(
            Out::new(EventType::OwnerAssigned, at, &identity)
                .with_opt("business_owner", owner)
                .with_opt("technical_custodian", custodian),
        );
    }
    if let Some(approved) = record.get("approved").filter(|a| a.is_object()) {
        let by = string(approved, "by")
            .or_else(|| string(approved, "approver"))
            .ok_or_else(|| Skip::new(SkipReason::ParseError, "`approved` names no `by`"))?;
        let when = time_of(approved, "at")?.unwrap_or(at);
        let mut out = Out::new(EventType::Approved, when, &identity)
            .with("approver", by)
            .with_list("scopes", strings(approved, "scopes").unwrap_or_default());
        if let Some(tools) = strings(approved, "tools") {
            out = out.with_list("tools", tools);
        }
        events.push(out);
    }
    if let Some(recertified) = record.get("recertified").filter(|a| a.is_object()) {
        let by = string(recertified, "by")
            .or_else(|| string(recertified, "reviewer"))
            .ok_or_else(|| Skip::new(SkipReason::ParseError, "`recertified` names no `by`"))?;
        let when = time_of(recertified, "at")?.unwrap_or(at);
        let mut out = Out::new(EventType::Recertified, when, &identity).with("reviewer", by);
        if let Some(scopes) = strings(recertified, "scopes") {
            out = out.with_list("scopes", scopes);
        }
        events.push(out);
    }
    Ok(Mapped {
        record_id: format!("{identity}@{}", format_rfc3339(at)),
        events,
    })
}
