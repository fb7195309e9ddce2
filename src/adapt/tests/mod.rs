//! Unit tests of the adapters, one module per source, written from the sources' official
//! schemas and documentation examples.

mod cloudtrail;
mod credential_report;
mod github;
mod inventory;
mod k8s;
mod otel;
mod props;
mod vault;

use serde_json::Value;

use super::{AdaptConfig, Adapted, Context, Format, SkipReason, adapt_bytes};
use crate::event::Decoder;

/// The default `[adapt]` config.
pub(super) fn config() -> AdaptConfig {
    crate::config::Config::load_with_env(None, Vec::new())
        .expect("default config")
        .adapt
}

/// Adapts `input` with `config`; every event passed the decoder.
pub(super) fn adapt_with(format: Format, input: &str, config: &AdaptConfig) -> Adapted {
    let ctx = Context {
        config,
        input: "test",
    };
    let adapted = adapt_bytes(format, input.as_bytes(), &ctx, &Decoder::new(1 << 20));
    assert!(
        adapted.counts.rejected.is_empty(),
        "adapted events rejected: {:?}",
        adapted.counts.rejected
    );
    adapted
}

/// The events (as JSON) of `input` with the default config.
pub(super) fn events(format: Format, input: &str) -> Vec<Value> {
    lines(&adapt_with(format, input, &config()))
}

/// The events of an adapter run, as JSON.
pub(super) fn lines(adapted: &Adapted) -> Vec<Value> {
    adapted
        .events
        .iter()
        .map(|e| serde_json::from_str(&e.line).expect("event JSON"))
        .collect()
}

/// The one skip reason of `input`.
pub(super) fn skipped(format: Format, input: &str) -> SkipReason {
    let adapted = adapt_with(format, input, &config());
    assert!(
        adapted.events.is_empty(),
        "expected a skip: {:?}",
        lines(&adapted)
    );
    assert_eq!(adapted.skipped.len(), 1);
    adapted.skipped[0].reason
}

/// The `type`s of `events`, in order.
pub(super) fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect()
}
