//! Running an adapter over an input: framing, mapping, ids, validation by the decoder,
//! counts per outcome and reason, and the contract's order of events.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Context, Format, SkipReason, framing, map_record, scrub};
use crate::event::decode::{MAX_DEAD_LETTER_PAYLOAD, Reason};
use crate::event::{Decoder, Micros};

/// One adapted event: its §1 JSON line, validated by the decoder, and what orders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptedEvent {
    /// Event time.
    pub time: Micros,
    /// Whether it is activity (ordered after everything else at an equal time).
    pub activity: bool,
    /// Event id.
    pub id: String,
    /// The §1 JSON, one line.
    pub line: String,
}

/// A skipped record, as written to `--skipped`.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// Why.
    pub reason: SkipReason,
    /// A short detail (an action name; never a value).
    pub detail: String,
    /// The input it came from.
    pub input: String,
    /// Its 1-based position among the input's records.
    pub record: usize,
    /// The record with every secret-named field removed, at most 64 KiB of JSON.
    pub payload: String,
}

impl Skipped {
    /// The JSON line written to `--skipped`.
    pub fn to_json(&self, format: Format) -> Value {
        serde_json::json!({
            "format": format.as_str(),
            "reason": self.reason.as_str(),
            "detail": self.detail,
            "input": self.input,
            "record": self.record,
            "payload": self.payload,
        })
    }
}

/// Counts of one adapter run, per outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records read.
    pub records: u64,
    /// Records that gave at least one event.
    pub adapted: u64,
    /// Events emitted.
    pub events: u64,
    /// Skipped records per reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Adapted events the decoder rejected, per reason (an adapter fault; never emitted).
    pub rejected: BTreeMap<Reason, u64>,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counts) {
        self.records += other.records;
        self.adapted += other.adapted;
        self.events += other.events;
        for (k, v) in &other.skipped {
            *self.skipped.entry(*k).or_default() += v;
        }
        for (k, v) in &other.rejected {
            *self.rejected.entry(*k).or_default() += v;
        }
    }

    /// Records skipped, all reasons.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// The lines printed to stderr: records, adapted, events, skipped per reason.
    pub fn render(&self, format: Format) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} records, {} adapted into {} events, {} skipped",
            format.as_str(),
            self.records,
            self.adapted,
            self.events,
            self.skipped_total()
        );
        for (reason, n) in &self.skipped {
            let _ = writeln!(out, "    skipped {:<26} {n}", reason.as_str());
        }
        for (reason, n) in &self.rejected {
            let _ = writeln!(
                out,
                "    rejected by the decoder {:<14} {n}",
                reason.as_str()
            );
        }
        out
    }
}

/// What an adapter made of one input.
#[derive(Debug, Clone, Default)]
pub struct Adapted {
    /// The events, in record order (see [`sort_events`]).
    pub events: Vec<AdaptedEvent>,
    /// Skipped records.
    pub skipped: Vec<Skipped>,
    /// Counts.
    pub counts: Counts,
}

/// Adapts one input (a file's bytes, or a Kafka record's payload) of `format`.
pub fn adapt_bytes(format: Format, bytes: &[u8], ctx: &Context<'_>, decoder: &Decoder) -> Adapted {
    let records = match format {
        Format::Inventory => super::inventory::records(bytes),
        Format::AwsCredentialReport => super::credential_report::records(bytes),
        Format::OtelGenai => super::otel::records(bytes),
        _ => framing::records(bytes),
    };
    let mut adapted = Adapted::default();
    for (i, record) in records.into_iter().enumerate() {
        adapted.counts.records += 1;
        let skip = |adapted: &mut Adapted, reason, detail: String, payload: Option<Value>| {
            *adapted.counts.skipped.entry(reason).or_default() += 1;
            adapted.skipped.push(Skipped {
                reason,
                detail,
                input: ctx.input.to_owned(),
                record: i + 1,
                payload: payload.map(scrubbed_text).unwrap_or_default(),
            });
        };
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                skip(&mut adapted, SkipReason::ParseError, error, None);
                continue;
            }
        };
        let mapped = match map_record(format, &record, ctx) {
            Ok(mapped) if !mapped.events.is_empty() => mapped,
            Ok(_) => {
                skip(
                    &mut adapted,
                    SkipReason::UnmappedAction,
                    "no event".into(),
                    Some(record),
                );
                continue;
            }
            Err(s) => {
                skip(&mut adapted, s.reason, s.detail, Some(record));
                continue;
            }
        };
        let mut emitted = 0;
        for (n, out) in mapped.events.iter().enumerate() {
            let id = match (&out.id, n) {
                (Some(own), _) => format!("{}:{own}", format.as_str()),
                (None, 0) => format!("{}:{}", format.as_str(), mapped.record_id),
                (None, n) => format!("{}:{}:{n}", format.as_str(), mapped.record_id),
            };
            let line = out.to_json(&id, format.source()).to_string();
            match decoder.decode(line.as_bytes()) {
                Ok(event) => {
                    emitted += 1;
                    adapted.events.push(AdaptedEvent {
                        time: event.time,
                        activity: event.is_activity(),
                        id: event.id,
                        line,
                    });
                }
                Err(reject) => {
                    tracing::warn!(
                        message = "Adapted event rejected by the decoder.",
                        format = format.as_str(),
                        reason = reject.reason.as_str(),
                        error = %reject.error,
                    );
                    *adapted.counts.rejected.entry(reject.reason).or_default() += 1;
                }
            }
        }
        if emitted > 0 {
            adapted.counts.adapted += 1;
            adapted.counts.events += emitted;
        }
    }
    adapted
}

fn scrubbed_text(mut record: Value) -> String {
    scrub(&mut record);
    let mut text = record.to_string();
    if text.len() > MAX_DEAD_LETTER_PAYLOAD {
        let mut cut = MAX_DEAD_LETTER_PAYLOAD;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// Sorts events by time; equal times in the contract's order (§2, "equal times"):
/// everything that is not activity first, then activity, each by id (byte order).
/// Events with the same id keep only their first copy.
pub fn sort_events(events: &mut Vec<AdaptedEvent>) {
    events.sort_by(|a, b| {
        (a.time, a.activity, a.id.as_bytes()).cmp(&(b.time, b.activity, b.id.as_bytes()))
    });
    events.dedup_by(|a, b| a.id == b.id && a.time == b.time);
}
