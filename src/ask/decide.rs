//! `POST /v1/decide`: would this tool call (or credential use) be allowed now?
//!
//! The answer comes from the window rules' own SQL, planned once more in an engine of
//! their own, run over a one-row activity table: the request as a `tool.called` (or
//! `credential.used`) event at the state's event time, enriched by the inventory exactly
//! as a real event would be ([`Inventory::enrich`]). So a window rule added as one SQL
//! file takes part in decisions with no Rust change. The open state findings of the
//! identity that concern this call (its own, and those of the credential, scopes and
//! tool it names) are reasons too. Each reason's severity maps to a verdict
//! (`[api.decide]`); the decision is the strictest. Nothing is applied, counted or
//! emitted.
//!
//! Rules that need several events in one window (NHI-SHARE-001, NHI-ENV-001) cannot be
//! met by one call: they take part, and never decide.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::alert::Alert;
use crate::engine::rule::{Rule, RuleError, RuleKind, RuleParams, Severity};
use crate::engine::tables::all_schemas;
use crate::engine::{Engine, EngineError};
use crate::event::time::format_rfc3339;
use crate::event::{Body, Decoder, Event, Micros};
use crate::inventory::enrich::WindowActivity;
use crate::pipeline::Pipeline;

/// What a finding makes of a decision.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Allow,
    Review,
    Deny,
}

impl Verdict {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Review => "review",
            Verdict::Deny => "deny",
        }
    }
}

/// `[api.decide]`: the verdict of a finding by its rule's severity, and per rule id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdicts {
    pub critical: Verdict,
    pub high: Verdict,
    pub medium: Verdict,
    pub low: Verdict,
    /// Per rule id, overriding its severity's verdict (e.g. `"NHI-ROT-001" = "review"`).
    #[serde(default)]
    pub rules: BTreeMap<String, Verdict>,
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts {
            critical: Verdict::Deny,
            high: Verdict::Deny,
            medium: Verdict::Review,
            low: Verdict::Allow,
            rules: BTreeMap::new(),
        }
    }
}

impl Verdicts {
    /// The verdict of a finding of `rule`.
    pub fn of(&self, rule_id: &str, severity: Severity) -> Verdict {
        if let Some(v) = self.rules.get(rule_id) {
            return *v;
        }
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
        }
    }

    /// Rule ids of `rules` that name no loaded rule.
    pub fn unknown_rules(&self, rules: &[Rule]) -> Vec<String> {
        self.rules
            .keys()
            .filter(|id| !rules.iter().any(|r| &r.id == *id))
            .cloned()
            .collect()
    }
}

/// The body of `POST /v1/decide`: a would-be tool call, or a credential use when `tool`
/// is absent. Field meanings as in the `tool.called` / `credential.used` events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    pub identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

/// Id of the event a request becomes; never applied, so it cannot collide.
const REQUEST_ID: &str = "decide";

impl DecideRequest {
    /// The request as an event at `time`, validated as input events are; the error says
    /// which field is wrong.
    pub fn to_event(&self, decoder: &Decoder, time: Micros) -> Result<Event, String> {
        let mut fields = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let kind = if self.tool.is_some() {
            "tool.called"
        } else {
            let call_only = [
                ("scopes", self.scopes.is_some()),
                ("sensitivity", self.sensitivity.is_some()),
                ("approval", self.approval.is_some()),
                ("task", self.task.is_some()),
                ("session", self.session.is_some()),
                ("vendor", self.vendor.is_some()),
            ];
            if let Some((field, _)) = call_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "`{field}` describes a tool call: give `tool` too (without it the request is a credential use)"
                ));
            }
            if self.credential.is_none() {
                return Err(
                    "give `tool` (a tool call) or `credential` (a credential use)".to_owned(),
                );
            }
            "credential.used"
        };
        fields["id"] = json!(REQUEST_ID);
        fields["type"] = json!(kind);
        fields["time"] = json!(format_rfc3339(time));
        let bytes = serde_json::to_vec(&fields).map_err(|e| e.to_string())?;
        decoder.decode_at(&bytes, time).map_err(|r| r.error)
    }
}

/// Why a decision cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The identity is not in this instance's state (404).
    #[error("{0}")]
    UnknownIdentity(String),
    /// The request is invalid (400).
    #[error("{0}")]
    Invalid(String),
    /// Nothing was evaluated yet, so there is no state to decide from (503).
    #[error("no state yet: no event has been evaluated")]
    NoState,
}

/// A request prepared against the inventory: the one-row tables and the open state
/// findings that concern it. Built where the pipeline lives; decided anywhere.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub identity: String,
    pub as_of: Micros,
    activity: RecordBatch,
    call_scopes: RecordBatch,
    state: Vec<Alert>,
}

/// One reason of a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub rule_id: String,
    pub rule: String,
    pub severity: String,
    /// `window` (the rule's SQL found this call) or `state` (an open finding).
    pub kind: String,
    pub verdict: Verdict,
    pub summary: String,
    /// State reasons: the open alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
}

/// The answer of `POST /v1/decide`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub decision: Verdict,
    /// The findings that decided it (verdict review or deny), strictest first.
    pub reasons: Vec<Reason>,
    /// The state's event time.
    pub as_of: String,
    pub identity: String,
}

/// Builds the request's one-row tables from `pipeline`'s inventory at its event time.
pub fn prepare(
    pipeline: &Pipeline,
    request: &DecideRequest,
    decoder: &Decoder,
) -> Result<Prepared, Refusal> {
    let as_of = pipeline.as_of().ok_or(Refusal::NoState)?;
    let event = request.to_event(decoder, as_of).map_err(Refusal::Invalid)?;
    let inventory = pipeline.inventory();
    if inventory.identity(&request.identity).is_none() {
        return Err(Refusal::UnknownIdentity(format!(
            "identity `{}` is not in this instance's state",
            request.identity
        )));
    }
    let mut rows = WindowActivity::small();
    inventory.enrich(&event, 0, pipeline.window_at(as_of), &mut rows);
    let activity = rows
        .activity
        .finish()
        .map_err(|e| Refusal::Invalid(e.to_string()))?;
    let call_scopes = rows
        .call_scopes
        .finish()
        .map_err(|e| Refusal::Invalid(e.to_string()))?;
    let (credential, tool, scopes) = match &event.body {
        Body::ToolCalled(c) => (
            c.credential.as_deref(),
            Some(c.tool.as_str()),
            &c.scopes[..],
        ),
        Body::CredentialUsed(u) => (Some(u.credential.as_str()), None, &[][..]),
        _ => (None, None, &[][..]),
    };
    // A finding concerns this call when every entity it names besides the identity is
    // one the call names (owners and vendors are the identity's own).
    let concerns = |alert: &Alert| {
        alert.key.iter().all(|(field, value)| match field.as_str() {
            "credential" => credential == Some(value.as_str()),
            "scope" => scopes.iter().any(|s| s == value),
            "tool" => tool == Some(value.as_str()),
            _ => true,
        })
    };
    let mut state: Vec<Alert> = pipeline
        .open_state_alerts(Some(&request.identity))
        .into_iter()
        .filter(|a| concerns(a))
        .collect();
    // The credential's own findings live with the identity that owns it.
    if let Some(owner) = credential
        .and_then(|c| inventory.credential(c))
        .map(|c| c.identity.to_string())
        .filter(|owner| *owner != request.identity)
    {
        state.extend(
            pipeline
                .open_state_alerts(Some(&owner))
                .into_iter()
                .filter(|a| {
                    a.key
                        .iter()
                        .any(|(f, v)| f == "credential" && Some(v.as_str()) == credential)
                }),
        );
    }
    Ok(Prepared {
        identity: request.identity.clone(),
        as_of,
        activity,
        call_scopes,
        state,
    })
}

/// One window rule planned for decisions, in an engine of its own.
struct Planned {
    engine: Arc<Engine>,
    /// The engine's tables are swapped per run: one decision at a time runs its SQL.
    running: Arc<tokio::sync::Mutex<()>>,
}

/// The window rules planned for decisions, and the verdicts.
///
/// Each rule has its engine, so a decision runs its rules as concurrent tasks (on as many
/// cores as the runtime has) and concurrent decisions overlap rule by rule.
pub struct Decider {
    planned: Vec<Planned>,
    verdicts: Verdicts,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("rules", &self.planned.len())
            .finish()
    }
}

impl Decider {
    /// Plans the window rules of `rules`.
    pub async fn new(
        rules: &[Rule],
        params: &RuleParams,
        verdicts: Verdicts,
    ) -> Result<Decider, RuleError> {
        let mut planned = Vec::new();
        for rule in rules.iter().filter(|r| r.kind == RuleKind::Window) {
            planned.push(Planned {
                engine: Arc::new(Engine::new(vec![rule.clone()], params).await?),
                running: Arc::new(tokio::sync::Mutex::new(())),
            });
        }
        Ok(Decider { planned, verdicts })
    }

    /// Decides a prepared request.
    pub async fn decide(&self, prepared: Prepared) -> Result<Decision, EngineError> {
        let mut tables: Vec<RecordBatch> = all_schemas()
            .into_iter()
            .take(5)
            .map(|(_, schema)| RecordBatch::new_empty(schema))
            .collect();
        tables.push(prepared.activity);
        tables.push(prepared.call_scopes);
        let runs: Vec<_> = self
            .planned
            .iter()
            .map(|p| {
                let (engine, running, tables) = (
                    Arc::clone(&p.engine),
                    Arc::clone(&p.running),
                    tables.clone(),
                );
                tokio::spawn(async move { run_rule(&engine, &running, tables).await })
            })
            .collect();
        let mut reasons = Vec::new();
        for (run, planned) in runs.into_iter().zip(&self.planned) {
            // Each engine holds exactly its one rule.
            let rule = &planned.engine.rules()[0];
            let summaries = run.await.map_err(|e| EngineError::Execute {
                rule: rule.id.clone(),
                source: datafusion::error::DataFusionError::Execution(e.to_string()),
            })??;
            for summary in summaries {
                reasons.push(Reason {
                    rule_id: rule.id.clone(),
                    rule: rule.name.clone(),
                    severity: rule.severity.as_str().to_owned(),
                    kind: "window".to_owned(),
                    verdict: self.verdicts.of(&rule.id, rule.severity),
                    summary,
                    alert_id: None,
                });
            }
        }
        for alert in &prepared.state {
            reasons.push(Reason {
                rule_id: alert.rule_id.clone(),
                rule: alert.rule.clone(),
                severity: alert.severity.as_str().to_owned(),
                kind: "state".to_owned(),
                verdict: self.verdicts.of(&alert.rule_id, alert.severity),
                summary: alert.summary.clone(),
                alert_id: Some(alert.alert_id.clone()),
            });
        }
        reasons.retain(|r| r.verdict != Verdict::Allow);
        reasons.sort_by_key(|r| std::cmp::Reverse(r.verdict));
        Ok(Decision {
            decision: reasons.first().map_or(Verdict::Allow, |r| r.verdict),
            reasons,
            as_of: format_rfc3339(prepared.as_of),
            identity: prepared.identity,
        })
    }
}

/// Runs one rule's engine over the request's tables: each finding's summary.
async fn run_rule(
    engine: &Engine,
    running: &tokio::sync::Mutex<()>,
    tables: Vec<RecordBatch>,
) -> Result<Vec<String>, EngineError> {
    let _one = running.lock().await;
    let mut found = Vec::new();
    let results = engine
        .run(tables, &[RuleKind::Window], Micros::MAX, |_, f, _| {
            found.extend(f.findings);
        })
        .await?;
    Ok(found
        .iter()
        .map(|f| engine.render(&results, f).summary)
        .collect())
}

/// A decision as JSON (the API's body).
pub fn to_json(decision: &Decision) -> Value {
    serde_json::to_value(decision).unwrap_or(Value::Null)
}
