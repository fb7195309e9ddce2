//! Framing, done once for every JSON source: a file (or a Kafka record) to its records.
//!
//! Accepted: one JSON document holding a CloudTrail `{"Records": [...]}` wrapper, a JSON
//! array, an OTLP `{"resourceSpans": [...]}` export or one record; JSON lines;
//! concatenated (also pretty-printed) JSON documents, as Vault's audit file writes them.
//! A line that does not parse is a `parse_error` record, never the end of the input.

use serde_json::{Map, Value};

/// One framed record, or the parse error of a piece of input that was meant to be one.
pub type Framed = Result<Value, String>;

/// Splits `bytes` into records (see the module doc).
pub fn records(bytes: &[u8]) -> Vec<Framed> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Vec::new();
    }
    // The common case: one document.
    if let Ok(doc) = serde_json::from_str::<Value>(text) {
        let mut out = Vec::new();
        unwrap_document(doc, &mut out);
        return out;
    }
    // Several concatenated documents (JSON lines, or pretty-printed JSON one after another).
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        match stream.next() {
            None => return out,
            Some(Ok(doc)) => unwrap_document(doc, &mut out),
            Some(Err(_)) => break,
        }
    }
    // A broken document: go on line by line from where the stream stopped, so one bad
    // line costs one record.
    let rest = &text[stream.byte_offset().min(text.len())..];
    // The rest of the line the stream stopped in is the broken record.
    for line in rest.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(doc) => unwrap_document(doc, &mut out),
            Err(e) => out.push(Err(format!("not valid JSON: {}", short(&e.to_string())))),
        }
    }
    out
}

fn short(text: &str) -> String {
    text.chars().take(160).collect()
}

/// Expands one document into its records.
fn unwrap_document(doc: Value, out: &mut Vec<Framed>) {
    match doc {
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(_) => unwrap_document(item, out),
                    _ => out.push(Err("array item is not a JSON object".into())),
                }
            }
        }
        Value::Object(mut map) => {
            if let Some(Value::Array(records)) = map.get_mut("Records") {
                for record in std::mem::take(records) {
                    out.push(Ok(record));
                }
            } else if map.get("resourceSpans").is_some_and(Value::is_array) {
                otlp_spans(&map, out);
            } else {
                out.push(Ok(Value::Object(map)));
            }
        }
        _ => out.push(Err("not a JSON object".into())),
    }
}

/// OTLP JSON (`resourceSpans[].scopeSpans[].spans[]`): each span becomes one record, with
/// its resource's attributes under `resource` and its scope's name under `scope`.
fn otlp_spans(export: &Map<String, Value>, out: &mut Vec<Framed>) {
    let resources = export.get("resourceSpans").and_then(Value::as_array);
    for resource in resources.into_iter().flatten() {
        let attributes = resource
            .get("resource")
            .and_then(|r| r.get("attributes"))
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        let scopes = resource
            .get("scopeSpans")
            .or_else(|| resource.get("instrumentationLibrarySpans"))
            .and_then(Value::as_array);
        for scope in scopes.into_iter().flatten() {
            let scope_name = scope
                .get("scope")
                .and_then(|s| s.get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            let spans = scope.get("spans").and_then(Value::as_array);
            for span in spans.into_iter().flatten() {
                let mut span = span.clone();
                if let Value::Object(map) = &mut span {
                    map.insert(
                        "resource".into(),
                        serde_json::json!({"attributes": attributes.clone()}),
                    );
                    map.insert("scope".into(), serde_json::json!({"name": scope_name}));
                    out.push(Ok(span));
                } else {
                    out.push(Err("span is not a JSON object".into()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(framed: &[Framed]) -> usize {
        framed.iter().filter(|r| r.is_ok()).count()
    }

    #[test]
    fn cloudtrail_wrapper_array_and_lines() {
        assert_eq!(ok(&records(br#"{"Records":[{"a":1},{"a":2}]}"#)), 2);
        assert_eq!(ok(&records(br#"[{"a":1},{"a":2},{"a":3}]"#)), 3);
        assert_eq!(ok(&records(b"{\"a\":1}\n{\"a\":2}\n\n{\"a\":3}\n")), 3);
        assert_eq!(ok(&records(b"{\"a\":1}")), 1);
        assert!(records(b"  \n").is_empty());
    }

    #[test]
    fn concatenated_pretty_json_is_split() {
        let text = "{\n  \"type\": \"request\"\n}\n{\n  \"type\": \"response\"\n}{\"x\":1}";
        assert_eq!(ok(&records(text.as_bytes())), 3);
    }

    #[test]
    fn a_bad_line_is_one_parse_error() {
        let framed = records(b"{\"a\":1}\n{broken\n{\"a\":3}\n");
        assert_eq!(ok(&framed), 2);
        assert_eq!(framed.iter().filter(|r| r.is_err()).count(), 1);
    }

    #[test]
    fn otlp_spans_carry_their_resource() {
        let text = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeSpans":[{"scope":{"name":"s"},"spans":[{"name":"a"},{"name":"b"}]}]}]}"#;
        let framed = records(text.as_bytes());
        assert_eq!(ok(&framed), 2);
        let span = framed[0].as_ref().expect("span");
        assert_eq!(
            span["resource"]["attributes"][0]["value"]["stringValue"],
            "svc"
        );
    }
}
