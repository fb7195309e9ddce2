//! Request-time decisions (contract §9) derived from the rules: each case builds a small
//! state, asks about one would-be call, and expects the answer and the rule that gave
//! it; and a table test over the rule fixtures: for every fixture case of the window
//! rules, a decision on the offending event, against the state just before it, names
//! that rule.

use std::path::Path;

use serde_json::{Value, json};

use nhi_drift::ask::decide::{DecideRequest, Decider, Decision, Refusal, Verdict, prepare};
use nhi_drift::config::Config;
use nhi_drift::engine::rule::{Rule, RuleKind, load_rules};
use nhi_drift::event::Decoder;
use nhi_drift::event::time::parse_rfc3339;
use nhi_drift::pipeline::{Options, Pipeline};

struct Setup {
    config: Config,
    rules: Vec<Rule>,
    pipeline: Pipeline,
    decider: Decider,
    decoder: Decoder,
}

impl Setup {
    async fn new() -> Setup {
        let config = Config::load(None).expect("config");
        let rules = load_rules(None).expect("rules");
        let pipeline = Pipeline::new(
            Options::from_config(&config),
            rules.clone(),
            &config.rule_params,
        )
        .await
        .expect("pipeline");
        let decider = Decider::new(&rules, &config.rule_params, config.api.decide.clone())
            .await
            .expect("decider");
        Setup {
            config,
            rules,
            pipeline,
            decider,
            decoder: Decoder::new(1 << 20),
        }
    }

    /// A fresh state holding `events` (JSON lines), judged up to `as_of`.
    async fn state(&mut self, events: &[Value], as_of: &str) {
        self.pipeline.reset();
        for event in events {
            let decoded = self
                .decoder
                .decode(event.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{event}: {e}"));
            self.pipeline.push_event(decoded);
        }
        self.pipeline
            .finish(Some(parse_rfc3339(as_of).expect("as_of")))
            .await
            .expect("finish");
    }

    async fn decide(&self, request: Value) -> Result<Decision, Refusal> {
        let request: DecideRequest = serde_json::from_value(request).expect("request");
        let prepared = prepare(&self.pipeline, &request, &self.decoder)?;
        Ok(self.decider.decide(prepared).await.expect("decide"))
    }
}

fn rule_ids(d: &Decision) -> Vec<&str> {
    d.reasons.iter().map(|r| r.rule_id.as_str()).collect()
}

fn ev(id: &str, kind: &str, time: &str, identity: &str, extra: Value) -> Value {
    let mut e = json!({"id": id, "type": kind, "time": time, "identity": identity});
    if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
        e.extend(extra.clone());
    }
    e
}

/// An approved, owned identity with a granted scope and an active API key.
fn governed(identity: &str, tier: &str) -> Vec<Value> {
    vec![
        ev(
            "g1",
            "identity.registered",
            "2026-03-01T09:00:00Z",
            identity,
            json!({"kind": "ai_agent", "tier": tier}),
        ),
        ev(
            "g2",
            "identity.owner_assigned",
            "2026-03-01T09:00:00Z",
            identity,
            json!({"business_owner": "ann@example.com", "technical_custodian": "bo@example.com"}),
        ),
        ev(
            "g3",
            "identity.approved",
            "2026-03-01T09:05:00Z",
            identity,
            json!({"approver": "cy@example.com", "scopes": ["crm:read"]}),
        ),
        ev(
            "g4",
            "identity.scope_granted",
            "2026-03-01T09:06:00Z",
            identity,
            json!({"scope": "crm:read"}),
        ),
        ev(
            "g5",
            "credential.issued",
            "2026-03-01T09:07:00Z",
            identity,
            json!({"credential": "key-1", "kind": "api_key"}),
        ),
    ]
}

const AS_OF: &str = "2026-03-02T09:00:00Z";

#[tokio::test]
async fn decisions_derived_from_the_rules() {
    let mut s = Setup::new().await;

    // A governed identity calling in its baseline: allowed, no reasons.
    s.state(&governed("agent-a", "tool_executing"), AS_OF).await;
    let call = json!({"identity": "agent-a", "tool": "crm.query", "credential": "key-1",
                      "scopes": ["crm:read"]});
    let d = s.decide(call.clone()).await.expect("decision");
    assert_eq!(
        (d.decision, rule_ids(&d)),
        (Verdict::Allow, vec![]),
        "{d:?}"
    );
    assert_eq!(d.as_of, AS_OF);

    // A scope outside the baseline.
    let d = s
        .decide(json!({"identity": "agent-a", "tool": "crm.query", "scopes": ["crm:delete"]}))
        .await
        .expect("decision");
    assert_eq!(
        (d.decision, rule_ids(&d)),
        (Verdict::Deny, vec!["NHI-SCOPE-001"]),
        "{d:?}"
    );
    assert!(d.reasons[0].summary.contains("crm:delete"), "{d:?}");

    // An identity that is not in the state at all: refused, never allowed.
    assert!(matches!(
        s.decide(json!({"identity": "agent-nobody", "tool": "t"}))
            .await,
        Err(Refusal::UnknownIdentity(_))
    ));

    // A revoked credential.
    let mut events = governed("agent-a", "tool_executing");
    events.push(ev(
        "r1",
        "credential.revoked",
        "2026-03-01T12:00:00Z",
        "agent-a",
        json!({"credential": "key-1"}),
    ));
    s.state(&events, AS_OF).await;
    let d = s.decide(call.clone()).await.expect("decision");
    assert_eq!(
        (d.decision, rule_ids(&d)),
        (Verdict::Deny, vec!["NHI-OFF-001"]),
        "{d:?}"
    );
    assert!(d.reasons[0].summary.contains("revoked"), "{d:?}");
    // A credential use (no tool) is decided the same way.
    let d = s
        .decide(json!({"identity": "agent-a", "credential": "key-1"}))
        .await
        .expect("decision");
    assert_eq!(rule_ids(&d), vec!["NHI-OFF-001"], "{d:?}");

    // An offboarded identity using its credential.
    let mut events = governed("agent-a", "tool_executing");
    events.push(ev(
        "o1",
        "identity.offboarded",
        "2026-03-02T08:30:00Z",
        "agent-a",
        json!({}),
    ));
    s.state(&events, AS_OF).await;
    let d = s.decide(call.clone()).await.expect("decision");
    assert_eq!(d.decision, Verdict::Deny, "{d:?}");
    assert_eq!(rule_ids(&d), vec!["NHI-OFF-001"], "{d:?}");
    assert!(d.reasons[0].summary.contains("offboarded"), "{d:?}");

    // No approval yet.
    let unapproved = vec![ev(
        "u1",
        "identity.registered",
        "2026-03-01T09:00:00Z",
        "agent-u",
        json!({"kind": "ai_agent", "tier": "tool_executing"}),
    )];
    s.state(&unapproved, AS_OF).await;
    let d = s
        .decide(json!({"identity": "agent-u", "tool": "crm.query"}))
        .await
        .expect("decision");
    assert_eq!(
        (d.decision, rule_ids(&d)),
        (Verdict::Deny, vec!["NHI-GOV-001"]),
        "{d:?}"
    );

    // The draft-only exemption: public and internal calls pass, confidential ones and
    // credential uses do not.
    let draft = vec![
        ev(
            "d1",
            "identity.registered",
            "2026-03-01T09:00:00Z",
            "agent-d",
            json!({"kind": "ai_agent", "tier": "draft_only"}),
        ),
        ev(
            "d2",
            "credential.issued",
            "2026-03-02T08:00:00Z",
            "agent-d",
            json!({"credential": "tok-d", "kind": "oauth_token", "expires": "2026-03-02T12:00:00Z"}),
        ),
    ];
    s.state(&draft, AS_OF).await;
    for sensitivity in ["public", "internal"] {
        let d = s
            .decide(
                json!({"identity": "agent-d", "tool": "docs.draft", "sensitivity": sensitivity}),
            )
            .await
            .expect("decision");
        assert_eq!(d.decision, Verdict::Allow, "{sensitivity}: {d:?}");
    }
    let d = s
        .decide(json!({"identity": "agent-d", "tool": "docs.draft"}))
        .await
        .expect("decision");
    assert_eq!(
        d.decision,
        Verdict::Allow,
        "no sensitivity counts as internal: {d:?}"
    );
    let d = s
        .decide(json!({"identity": "agent-d", "tool": "docs.send", "sensitivity": "confidential"}))
        .await
        .expect("decision");
    assert_eq!(
        (d.decision, rule_ids(&d)),
        (Verdict::Deny, vec!["NHI-GOV-001"]),
        "{d:?}"
    );
    let d = s
        .decide(json!({"identity": "agent-d", "credential": "tok-d"}))
        .await
        .expect("decision");
    assert_eq!(
        rule_ids(&d),
        vec!["NHI-GOV-001"],
        "a credential use is not exempt: {d:?}"
    );

    // A privileged call without a JIT token or an approval; with either, allowed.
    let mut events = governed("agent-p", "privileged");
    events.push(ev(
        "p1",
        "credential.issued",
        "2026-03-02T08:50:00Z",
        "agent-p",
        json!({"credential": "jit-1", "kind": "jit_token", "task": "OPS-1",
                          "expires": "2026-03-02T09:20:00Z"}),
    ));
    s.state(&events, AS_OF).await;
    let privileged = json!({"identity": "agent-p", "tool": "k8s.delete", "credential": "key-1",
                            "scopes": ["crm:read"]});
    let d = s.decide(privileged.clone()).await.expect("decision");
    assert_eq!(
        (d.decision, rule_ids(&d)),
        (Verdict::Deny, vec!["NHI-PRIV-001"]),
        "{d:?}"
    );
    let mut approved = privileged.clone();
    approved["approval"] = json!("CHG-42");
    assert_eq!(
        s.decide(approved).await.expect("decision").decision,
        Verdict::Allow
    );
    let mut jit = privileged.clone();
    jit["credential"] = json!("jit-1");
    assert_eq!(
        s.decide(jit).await.expect("decision").decision,
        Verdict::Allow
    );
    // A restricted call by any tier needs the same.
    s.state(&governed("agent-a", "tool_executing"), AS_OF).await;
    let mut restricted = call.clone();
    restricted["sensitivity"] = json!("restricted");
    let d = s.decide(restricted).await.expect("decision");
    assert_eq!(rule_ids(&d), vec!["NHI-PRIV-001"], "{d:?}");

    // An orphaned identity: its open state finding decides, and names the alert.
    let mut events = governed("agent-a", "tool_executing");
    events.push(
        json!({"id": "x1", "type": "principal.departed", "time": "2026-03-01T18:00:00Z",
                       "principal": "bo@example.com"}),
    );
    s.state(&events, AS_OF).await;
    let d = s.decide(call.clone()).await.expect("decision");
    assert_eq!(
        (d.decision, rule_ids(&d)),
        (Verdict::Deny, vec!["NHI-ORPH-001"]),
        "{d:?}"
    );
    assert_eq!(d.reasons[0].kind, "state");
    assert!(d.reasons[0].alert_id.is_some());

    // A state finding about another credential does not concern this call; one about
    // this credential does (NHI-ROT-001, high: deny; NHI-STALE-002 medium: review).
    let mut events = governed("agent-a", "tool_executing");
    events.push(ev(
        "k2",
        "credential.issued",
        "2026-03-01T09:08:00Z",
        "agent-a",
        json!({"credential": "key-2", "kind": "api_key"}),
    ));
    events.push(ev(
        "k3",
        "tool.called",
        "2026-06-10T09:00:00Z",
        "agent-a",
        json!({"tool": "crm.query", "credential": "key-2", "scopes": ["crm:read"]}),
    ));
    events.push(ev(
        "k4",
        "identity.recertified",
        "2026-06-10T09:00:00Z",
        "agent-a",
        json!({"reviewer": "cy@example.com"}),
    ));
    s.state(&events, "2026-06-10T10:00:00Z").await;
    let d = s.decide(call.clone()).await.expect("decision");
    assert!(
        rule_ids(&d).contains(&"NHI-ROT-001"),
        "key-1 is overdue: {d:?}"
    );
    let mut with_key2 = call.clone();
    with_key2["credential"] = json!("key-2");
    let d2 = s.decide(with_key2).await.expect("decision");
    assert!(
        d2.reasons
            .iter()
            .all(|r| r.rule_id != "NHI-ROT-001" || r.summary.contains("key-2")),
        "key-1's findings do not decide a call with key-2: {d2:?}"
    );

    // The verdicts are configuration.
    let mut verdicts = s.config.api.decide.clone();
    verdicts
        .rules
        .insert("NHI-SCOPE-001".into(), Verdict::Review);
    let lenient = Decider::new(&s.rules, &s.config.rule_params, verdicts)
        .await
        .expect("decider");
    s.state(&governed("agent-a", "tool_executing"), AS_OF).await;
    let request: DecideRequest = serde_json::from_value(
        json!({"identity": "agent-a", "tool": "crm.query", "scopes": ["crm:delete"]}),
    )
    .expect("request");
    let prepared = prepare(&s.pipeline, &request, &s.decoder).expect("prepared");
    let d = lenient.decide(prepared).await.expect("decide");
    assert_eq!(
        (d.decision, rule_ids(&d)),
        (Verdict::Review, vec!["NHI-SCOPE-001"])
    );
}

/// Rules whose condition needs several events in one window: one call cannot meet it.
const MULTI_EVENT: [&str; 2] = ["NHI-SHARE-001", "NHI-ENV-001"];

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn is_activity(e: &Value) -> bool {
    matches!(e["type"].as_str(), Some("tool.called" | "credential.used"))
}

/// Contract order: time, then non-activity before activity, then id.
fn order_key(e: &Value) -> (i64, bool, String) {
    (
        parse_rfc3339(e["time"].as_str().unwrap_or_default()).unwrap_or(i64::MIN),
        is_activity(e),
        e["id"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The request a recorded use or call would have made.
fn request_of(event: &Value) -> Value {
    let mut request = json!({});
    for field in [
        "identity",
        "tool",
        "credential",
        "scopes",
        "sensitivity",
        "approval",
        "environment",
        "workload",
        "task",
        "session",
        "vendor",
    ] {
        if !event[field].is_null() {
            request[field] = event[field].clone();
        }
    }
    request
}

#[tokio::test]
async fn every_window_rule_fixture_offence_is_decided_by_that_rule() {
    let mut s = Setup::new().await;
    let window_rules: Vec<String> = s
        .rules
        .iter()
        .filter(|r| r.kind == RuleKind::Window)
        .map(|r| r.id.clone())
        .collect();
    assert!(window_rules.len() >= 6, "{window_rules:?}");
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    for rule_id in &window_rules {
        if MULTI_EVENT.contains(&rule_id.as_str()) {
            continue;
        }
        let dir = Path::new("tests/fixtures/rules").join(rule_id);
        let mut cases: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        cases.sort();
        for case in cases {
            let mut events = read_lines(&case.join("events.jsonl"));
            events.sort_by_key(order_key);
            let expected = read_lines(&case.join("expected.jsonl"));
            for alert in expected.iter().filter(|a| a["status"] == "open") {
                let opened = alert["opened_at"].as_str().unwrap_or_default();
                let name = format!(
                    "{rule_id}/{}",
                    case.file_name().unwrap_or_default().to_string_lossy()
                );
                let candidates: Vec<&Value> = events
                    .iter()
                    .filter(|e| is_activity(e))
                    .filter(|e| order_key(e).0 == parse_rfc3339(opened).unwrap_or(0))
                    .filter(|e| {
                        e["identity"] == alert["identity"]
                            || (!alert["credential"].is_null()
                                && e["credential"] == alert["credential"])
                    })
                    .filter(|e| alert["tool"].is_null() || e["tool"] == alert["tool"])
                    .filter(|e| {
                        alert["credential"].is_null() || e["credential"] == alert["credential"]
                    })
                    .filter(|e| {
                        alert["scope"].is_null()
                            || e["scopes"]
                                .as_array()
                                .is_some_and(|s| s.contains(&alert["scope"]))
                    })
                    .collect();
                if candidates.is_empty() {
                    failures.push(format!("{name}: no event at {opened} matches {alert}"));
                    continue;
                }
                let mut answers = Vec::new();
                let mut decided = false;
                for offending in candidates {
                    let before: Vec<Value> = events
                        .iter()
                        .filter(|e| order_key(e) < order_key(offending))
                        .cloned()
                        .collect();
                    let known = before
                        .iter()
                        .any(|e| e["identity"] == offending["identity"]);
                    s.state(&before, opened).await;
                    match s.decide(request_of(offending)).await {
                        Ok(d) => {
                            let by_rule = d.reasons.iter().any(|r| {
                                &r.rule_id == rule_id
                                    && r.kind == "window"
                                    && r.verdict != Verdict::Allow
                            });
                            decided |= by_rule && d.decision != Verdict::Allow;
                            answers.push(format!("{:?} {:?}", d.decision, rule_ids(&d)));
                        }
                        // The first event naming an identity creates it implicitly; before
                        // it the identity is unknown, which is refused, never allowed.
                        Err(Refusal::UnknownIdentity(_) | Refusal::NoState) if !known => {
                            decided = true;
                            answers.push("unknown identity (refused)".into());
                        }
                        Err(e) => answers.push(format!("refused: {e}")),
                    }
                }
                if decided {
                    *checked.entry(rule_id.clone()).or_default() += 1;
                } else {
                    failures.push(format!("{name} at {opened}: {}", answers.join("; ")));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "offences not decided by their rule:\n  {}",
        failures.join("\n  ")
    );
    for rule_id in window_rules
        .iter()
        .filter(|r| !MULTI_EVENT.contains(&r.as_str()))
    {
        assert!(
            checked.get(rule_id).is_some_and(|n| *n >= 2),
            "{rule_id}: too few offences checked ({checked:?})"
        );
    }
}
