//! `nhi-drift inspect IDENTITY`: the identity view from a running service (`--url`, the
//! `/v1` API) or from a replay of recorded files up to `--as-of`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::answer::Answerer;
use super::decide::Refusal;
use crate::alert::format::AlertFormat;
use crate::config::Config;
use crate::engine::rule::Rule;
use crate::event::{Decoder, Micros};
use crate::pipeline::{Options, Pipeline, PipelineError};
use crate::replay::{Input, ReplayError, Sinks, replay, replay_inputs};

/// Why `inspect` has no view to show.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The service could not be reached or answered something unreadable.
    #[error("{url}: {error}")]
    Http { url: String, error: String },
    /// The service answered with an error status.
    #[error("{url}: {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
}

/// The view of `identity` after replaying `files` up to `as_of`, as JSON.
pub async fn from_files(
    config: &Config,
    rules: Vec<Rule>,
    files: &[PathBuf],
    as_of: Option<Micros>,
    identity: &str,
) -> Result<Value, InspectError> {
    let mut pipeline =
        Pipeline::new(Options::from_config(config), rules, &config.rule_params).await?;
    let decoder = Decoder::from_config(config);
    let mut alerts = Vec::new();
    let mut sinks = Sinks {
        format: AlertFormat::Json,
        alerts: &mut alerts,
        dead_letters: None,
    };
    match as_of {
        // Only the events up to `as_of` are read: a replay applies what the watermark has
        // passed while reading, so later events would otherwise be in the state.
        Some(as_of) => {
            let inputs = until(files, as_of, &decoder)?;
            replay_inputs(
                &mut pipeline,
                &inputs,
                Some(as_of),
                &decoder,
                &mut sinks,
                |_, _| {},
            )
            .await?;
        }
        None => {
            replay(&mut pipeline, files, None, &decoder, &mut sinks, |_, _| {}).await?;
        }
    }
    let mut answerer = Answerer::new(config.api.findings_kept, decoder);
    for line in String::from_utf8_lossy(&alerts).lines() {
        if let Ok(alert) = serde_json::from_str::<Value>(line)
            && alert["identity"].as_str() == Some(identity)
        {
            answerer.findings.record_json(pipeline.rules(), alert);
        }
    }
    let view = answerer.identity(&[&pipeline], identity)?;
    serde_json::to_value(&view).map_err(|e| InspectError::Http {
        url: "-".into(),
        error: e.to_string(),
    })
}

/// The lines of `files` without the events after `as_of` (records that do not decode
/// stay, to be dead-lettered as a replay would).
fn until(files: &[PathBuf], as_of: Micros, decoder: &Decoder) -> Result<Vec<Input>, ReplayError> {
    // Event times only: no wall-clock limit while choosing.
    let times = Decoder::new(decoder.max_event_bytes());
    let mut inputs = Vec::new();
    for path in files {
        let text = std::fs::read(path).map_err(|source| ReplayError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut kept = Vec::with_capacity(text.len());
        for line in text.split(|b| *b == b'\n') {
            if times.decode(line).is_ok_and(|e| e.time > as_of) {
                continue;
            }
            kept.extend_from_slice(line);
            kept.push(b'\n');
        }
        inputs.push(Input::Memory {
            name: path.display().to_string(),
            lines: std::sync::Arc::new(kept),
        });
    }
    Ok(inputs)
}

/// The view of `identity` from the service at `url` (`http://host:port`), as JSON.
pub fn from_url(url: &str, token: Option<&str>, identity: &str) -> Result<Value, InspectError> {
    let fail = |error: String| InspectError::Http {
        url: url.to_owned(),
        error,
    };
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        fail("only http:// URLs are supported (put a TLS proxy in front for https)".into())
    })?;
    let (host, base) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let address = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    let path = format!("{base}/v1/identities/{}", percent_encode(identity));
    let mut stream = TcpStream::connect(&address).map_err(|e| fail(e.to_string()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| fail(e.to_string()))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("the answer is not HTTP".into()))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fail("the answer has no status".into()))?;
    let value: Value =
        serde_json::from_str(body).map_err(|e| fail(format!("the answer is not JSON ({e})")))?;
    if status != 200 {
        return Err(InspectError::Status {
            url: url.to_owned(),
            status,
            message: value["error"].as_str().unwrap_or(body).to_owned(),
        });
    }
    Ok(value)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
