//! OTel GenAI spans, from the semantic conventions (`gen-ai-spans.md`, `mcp.md`) and the
//! OTLP JSON encoding.

use serde_json::json;

use super::{adapt_with, config, events, lines, types};
use crate::adapt::Format;

fn attr(key: &str, value: &str) -> serde_json::Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn export(spans: Vec<serde_json::Value>) -> String {
    json!({"resourceSpans": [{"resource": {"attributes": [attr("service.name", "support-bot")]},
        "scopeSpans": [{"scope": {"name": "agent"}, "spans": spans}]}]})
    .to_string()
}

#[test]
fn execute_tool_spans_are_tool_calls_of_the_agent_of_their_trace() {
    let agent = json!({"traceId": "t1", "spanId": "s1", "name": "invoke_agent triage",
        "startTimeUnixNano": "1758026580000000000",
        "attributes": [attr("gen_ai.operation.name", "invoke_agent"), attr("gen_ai.agent.id", "triage")]});
    let tool = json!({"traceId": "t1", "spanId": "s2", "parentSpanId": "s1", "name": "execute_tool search",
        "startTimeUnixNano": "1758026581500000000", "status": {"code": 2},
        "attributes": [attr("gen_ai.operation.name", "execute_tool"), attr("gen_ai.tool.name", "search"),
                       attr("gen_ai.conversation.id", "conv-7"),
                       attr("gen_ai.tool.call.arguments", "{\"q\": \"SECRET-ARG\"}"),
                       attr("gen_ai.tool.call.result", "SECRET-RESULT")]});
    let out = events(Format::OtelGenai, &export(vec![agent, tool]));
    assert_eq!(types(&out), ["identity.registered", "tool.called"]);
    assert_eq!(out[0]["identity"], "agent:support-bot:triage");
    assert_eq!(out[0]["kind"], "ai_agent");
    assert_eq!(out[0]["workflow"], "support-bot");
    assert_eq!(out[1]["identity"], "agent:support-bot:triage");
    assert_eq!(out[1]["tool"], "search");
    assert_eq!(out[1]["session"], "conv-7");
    assert_eq!(out[1]["outcome"], "error");
    assert_eq!(out[1]["time"], "2025-09-16T12:43:01.500Z");
    assert_eq!(out[1]["id"], "otel-genai:t1:s2");
    let text = serde_json::to_string(&out).expect("json");
    assert!(!text.contains("SECRET-ARG") && !text.contains("SECRET-RESULT"));
}

#[test]
fn mcp_client_calls_count_unless_inside_an_execute_tool_span() {
    let tool = json!({"traceId": "t", "spanId": "a", "startTimeUnixNano": "1758026581000000000",
        "attributes": [attr("gen_ai.operation.name", "execute_tool"), attr("gen_ai.tool.name", "get_time"),
                       attr("gen_ai.agent.name", "bot")]});
    let inner = json!({"traceId": "t", "spanId": "b", "parentSpanId": "a", "kind": 3, "startTimeUnixNano": "1758026581100000000",
        "attributes": [attr("mcp.method.name", "tools/call"), attr("gen_ai.tool.name", "get_time"),
                       attr("gen_ai.agent.name", "bot")]});
    let alone = json!({"traceId": "u", "spanId": "c", "kind": 3, "startTimeUnixNano": "1758026582000000000",
        "attributes": [attr("mcp.method.name", "tools/call"), attr("gen_ai.tool.name", "get_time"),
                       attr("gen_ai.agent.name", "bot"), attr("mcp.session.id", "m-1"), attr("server.address", "time.example")]});
    let out = events(Format::OtelGenai, &export(vec![tool, inner, alone]));
    assert_eq!(types(&out), ["tool.called", "tool.called"]);
    assert_eq!(out[1]["session"], "m-1");
    assert_eq!(out[1]["vendor"], "time.example");
}

#[test]
fn ignored_tools_and_sensitivity_come_from_config() {
    let span = |tool: &str| {
        json!({"traceId": "t", "spanId": tool, "startTimeUnixNano": "1758026581000000000",
        "attributes": [attr("gen_ai.operation.name", "execute_tool"), attr("gen_ai.tool.name", tool),
                       attr("gen_ai.agent.name", "bot")]})
    };
    let mut config = config();
    config.ignore_tools = vec!["final_*".into()];
    config.confidential = vec!["write_file".into()];
    let adapted = adapt_with(
        Format::OtelGenai,
        &export(vec![span("final_answer"), span("write_file")]),
        &config,
    );
    let out = lines(&adapted);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["sensitivity"], "confidential");
    assert_eq!(adapted.skipped.len(), 1);
}
