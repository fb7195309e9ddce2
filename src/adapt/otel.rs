//! OpenTelemetry spans with the GenAI and MCP semantic conventions (`otel-genai`): OTLP
//! JSON exports, and SDK-serialised span lists (`{"spans": [...]}`, as agent frameworks
//! write traces to files).
//!
//! `execute_tool` spans (and MCP `tools/call` client spans not inside one) are
//! `tool.called`; `invoke_agent` / `create_agent` spans register the agent once. The
//! identity is `agent:<service.name>:<gen_ai.agent.id or name>`, the agent taken from the
//! span or from the `invoke_agent` span of its trace; a service left at the SDK default
//! (`unknown_service…`) is named by the input instead. Tool arguments and results
//! (`gen_ai.tool.call.arguments` / `.result`, `gen_ai.tool.args`, `gen_ai.output`) are
//! never read.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::framing::{self, Framed};
use super::{Context, MapResult, Mapped, Out, Skip, SkipReason, time};
use crate::event::EventType;

/// The spans of an input, each with its attributes (span and resource) flattened into
/// one `attributes` map, its trace's agent under `_agent`, and its parent's operation
/// under `_parent_operation`.
pub fn records(bytes: &[u8]) -> Vec<Framed> {
    let mut spans: Vec<Framed> = Vec::new();
    for framed in framing::records(bytes) {
        match framed {
            Ok(Value::Object(mut doc)) => match doc.remove("spans") {
                Some(Value::Array(items)) => spans.extend(items.into_iter().map(Ok)),
                Some(other) => {
                    doc.insert("spans".into(), other);
                    spans.push(Ok(Value::Object(doc)));
                }
                None => spans.push(Ok(Value::Object(doc))),
            },
            other => spans.push(other),
        }
    }
    let mut spans: Vec<Framed> = spans.into_iter().map(|s| s.map(normalise)).collect();
    // Per trace: the agent named by its invoke_agent span; per span id: its operation.
    let mut agents: BTreeMap<String, String> = BTreeMap::new();
    let mut operations: BTreeMap<String, String> = BTreeMap::new();
    for span in spans.iter().flatten() {
        let attrs = &span["attributes"];
        if let Some(agent) = agent_name(attrs)
            && let Some(trace) = span["_trace"].as_str()
        {
            agents.entry(trace.to_owned()).or_insert(agent);
        }
        if let (Some(id), Some(op)) = (
            span["_span"].as_str(),
            attrs["gen_ai.operation.name"].as_str(),
        ) {
            operations.insert(id.to_owned(), op.to_owned());
        }
    }
    for span in spans.iter_mut().flatten() {
        let trace = span["_trace"].as_str().map(str::to_owned);
        let parent = span["_parent"].as_str().map(str::to_owned);
        if let Some(map) = span.as_object_mut() {
            if let Some(agent) = trace.and_then(|t| agents.get(&t)) {
                map.insert("_agent".into(), Value::String(agent.clone()));
            }
            if let Some(op) = parent.and_then(|p| operations.get(&p)) {
                map.insert("_parent_operation".into(), Value::String(op.clone()));
            }
        }
    }
    spans
}

fn agent_name(attrs: &Value) -> Option<String> {
    ["gen_ai.agent.id", "gen_ai.agent.name"]
        .iter()
        .find_map(|k| attrs[*k].as_str().filter(|s| !s.is_empty()))
        .map(str::to_owned)
}

/// An OTLP `AnyValue` (`{"stringValue": …}`) or a plain value, as plain JSON.
fn any_value(v: &Value) -> Value {
    let Some(map) = v.as_object() else {
        return v.clone();
    };
    for key in ["stringValue", "boolValue", "intValue", "doubleValue"] {
        if let Some(inner) = map.get(key) {
            return inner.clone();
        }
    }
    if map.len() == 1 && map.contains_key("arrayValue") {
        return Value::Null;
    }
    v.clone()
}

/// Attributes as a map, from an OTLP `[{key, value}]` list or a plain map.
fn attributes(v: Option<&Value>, out: &mut Map<String, Value>) {
    match v {
        Some(Value::Array(items)) => {
            for item in items {
                if let Some(key) = item["key"].as_str() {
                    out.insert(key.to_owned(), any_value(&item["value"]));
                }
            }
        }
        Some(Value::Object(map)) => {
            for (k, v) in map {
                out.insert(k.clone(), any_value(v));
            }
        }
        _ => {}
    }
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One span in one shape: `attributes` (resource attributes under the span's), `_trace`,
/// `_span`, `_parent`, `_start`, `_error`.
fn normalise(span: Value) -> Value {
    let mut attrs = Map::new();
    attributes(
        span.get("resource").and_then(|r| r.get("attributes")),
        &mut attrs,
    );
    attributes(span.get("attributes"), &mut attrs);
    let trace = span
        .get("traceId")
        .or_else(|| span.get("context").and_then(|c| c.get("trace_id")))
        .and_then(id_text);
    let span_id = span
        .get("spanId")
        .or_else(|| span.get("context").and_then(|c| c.get("span_id")))
        .and_then(id_text);
    let parent = span
        .get("parentSpanId")
        .or_else(|| span.get("parent").and_then(|p| p.get("span_id")))
        .and_then(id_text);
    let start = span
        .get("startTimeUnixNano")
        .or_else(|| span.get("start_time"))
        .cloned()
        .unwrap_or(Value::Null);
    let status = span.get("status");
    let error = status.is_some_and(|st| {
        let code = st.get("code").or_else(|| st.get("status_code"));
        matches!(code, Some(Value::Number(n)) if n.as_i64() == Some(2))
            || code
                .and_then(Value::as_str)
                .is_some_and(|c| c.to_ascii_lowercase().contains("error"))
    }) || attrs.contains_key("error.type");
    let mut out = Map::new();
    out.insert(
        "name".into(),
        span.get("name").cloned().unwrap_or(Value::Null),
    );
    out.insert(
        "kind".into(),
        span.get("kind").cloned().unwrap_or(Value::Null),
    );
    out.insert("attributes".into(), Value::Object(attrs));
    for (k, v) in [("_trace", trace), ("_span", span_id), ("_parent", parent)] {
        out.insert(k.into(), v.map_or(Value::Null, Value::String));
    }
    out.insert("_start".into(), start);
    out.insert("_error".into(), Value::Bool(error));
    Value::Object(out)
}

/// The service naming the agent: `service.name`, or the input's name when the SDK
/// default was left (a trailing `_trace` cut).
fn service(attrs: &Value, ctx: &Context<'_>) -> String {
    match attrs["service.name"].as_str() {
        Some(s) if !s.is_empty() && !s.starts_with("unknown_service") => s.to_owned(),
        _ => {
            let input = ctx.input;
            let input = input
                .strip_suffix("_trace")
                .or_else(|| input.strip_suffix("-trace"))
                .unwrap_or(input);
            input.to_owned()
        }
    }
}

/// Maps one normalised span (see [`records`]).
pub fn map(span: &Value, ctx: &Context<'_>) -> MapResult {
    let attrs = &span["attributes"];
    if !attrs.is_object() {
        return Err(Skip::new(SkipReason::ParseError, "span has no attributes"));
    }
    let time = time::parse(&span["_start"])
        .ok_or_else(|| Skip::new(SkipReason::MissingTime, "span has no start time"))?;
    let record_id = match (span["_trace"].as_str(), span["_span"].as_str()) {
        (Some(t), Some(s)) => format!("{t}:{s}"),
        _ => format!("{}:{time}", ctx.input),
    };
    let operation = attrs["gen_ai.operation.name"].as_str().unwrap_or("");
    let mcp_call = attrs["mcp.method.name"].as_str() == Some("tools/call");
    let agent = agent_name(attrs).or_else(|| span["_agent"].as_str().map(str::to_owned));
    let svc = service(attrs, ctx);
    let identity = |agent: &str| format!("agent:{svc}:{agent}");
    match operation {
        "invoke_agent" | "create_agent" => {
            let Some(agent) = agent else {
                return Err(Skip::new(
                    SkipReason::UnlinkableCredential,
                    "agent span names no agent",
                ));
            };
            let key = identity(&agent);
            let out = Out::new(EventType::IdentityRegistered, time, &key)
                .with("kind", "ai_agent")
                .with("name", &agent)
                .with("workflow", &svc)
                .with_id(format!("registered:{key}"));
            Ok(Mapped {
                record_id,
                events: vec![out],
            })
        }
        "execute_tool" => tool_call(
            span,
            ctx,
            time,
            record_id,
            agent.map(|a| identity(&a)),
            false,
        ),
        _ if mcp_call => {
            if span["_parent_operation"].as_str() == Some("execute_tool") {
                return Err(Skip::new(
                    SkipReason::DuplicateStage,
                    "MCP call inside an execute_tool span",
                ));
            }
            let kind = span.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind.eq_ignore_ascii_case("server") || kind == "SPAN_KIND_SERVER" {
                return Err(Skip::new(
                    SkipReason::NotNhi,
                    "MCP server span names no caller",
                ));
            }
            tool_call(
                span,
                ctx,
                time,
                record_id,
                agent.map(|a| identity(&a)),
                true,
            )
        }
        "" => Err(Skip::new(SkipReason::UnmappedAction, "not a GenAI span")),
        other => Err(Skip::new(SkipReason::UnmappedAction, other)),
    }
}

fn tool_call(
    span: &Value,
    ctx: &Context<'_>,
    time: i64,
    record_id: String,
    identity: Option<String>,
    mcp: bool,
) -> MapResult {
    let attrs = &span["attributes"];
    let Some(identity) = identity else {
        return Err(Skip::new(
            SkipReason::UnlinkableCredential,
            "tool call names no agent",
        ));
    };
    let tool = attrs["gen_ai.tool.name"]
        .as_str()
        .or_else(|| attrs["mcp.tool.name"].as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Skip::new(SkipReason::ParseError, "tool call names no tool"))?;
    if ctx.config.ignores_tool(tool) {
        return Err(Skip::new(
            SkipReason::UnmappedAction,
            format!("ignored tool {tool}"),
        ));
    }
    let session = attrs["gen_ai.conversation.id"]
        .as_str()
        .or_else(|| attrs["mcp.session.id"].as_str())
        .map(str::to_owned)
        .or_else(|| span["_trace"].as_str().map(str::to_owned));
    let vendor = if mcp {
        attrs["server.address"].as_str()
    } else {
        None
    };
    let outcome = if span["_error"] == Value::Bool(true) {
        "error"
    } else {
        "success"
    };
    let out = Out::new(EventType::ToolCalled, time, identity)
        .with("tool", tool)
        .with_opt("sensitivity", ctx.config.sensitivity(tool, None))
        .with_opt("session", session)
        .with_opt("vendor", vendor)
        .with("outcome", outcome);
    Ok(Mapped {
        record_id,
        events: vec![out],
    })
}
