//! The pipeline's state as a serialisable value, for checkpoints: everything that the
//! input seen so far built up — clock, dedup set, pending events, open windows (with the
//! activity rows already applied to them), inventory, alert lifecycle. Taken between
//! batches, so no evaluation is ever half done.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::io::Cursor;

use arrow::compute::concat_batches;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::{OpenWindow, Pipeline};
use crate::alert::lifecycle::Lifecycle;
use crate::clock::Clock;
use crate::engine::tables::{Activity, CallScopes};
use crate::event::{Event, Micros};
use crate::inventory::Inventory;

/// Format version of [`PipelineState`]; a checkpoint of another version is refused.
pub const STATE_VERSION: u32 = 4;

/// Everything a restarted pipeline needs to continue exactly where this one stood.
#[derive(Debug, Serialize, Deserialize)]
pub struct PipelineState {
    pub version: u32,
    /// Rule ids in the order findings refer to them.
    pub rules: Vec<String>,
    pub clock: Clock,
    pub seq: u64,
    /// Events waiting for the watermark.
    pub pending: Vec<Event>,
    pub windows: Vec<WindowState>,
    pub inventory: Inventory,
    pub lifecycle: Lifecycle,
    pub last_eval: Option<Micros>,
    pub engine_runs: u64,
}

/// One open window.
#[derive(Debug, Serialize, Deserialize)]
pub struct WindowState {
    pub start: Micros,
    pub end: Micros,
    pub events: u64,
    /// Activity rows applied early, as Arrow IPC streams in hex (activity, call scopes).
    pub early: Option<(String, String, usize)>,
    pub identities: BTreeSet<String>,
    /// Hashes of its events' ids (remembered until it closes), as hex.
    pub ids: String,
}

/// Why a checkpoint cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "checkpoint format {found} was written by another version of nhi-drift; this one \
         reads format {STATE_VERSION} (run the version that wrote it, or move the checkpoint \
         directory away to start from empty state at the group's committed offsets)"
    )]
    Version { found: u32 },
    #[error(
        "checkpoint was taken with time.window = {0} µs and time.allowed_lateness = {1} µs; \
         the config now says {2} µs and {3} µs (restore with the old settings, or move the \
         checkpoint directory away to start over)"
    )]
    Settings(Micros, Micros, Micros, Micros),
    #[error("checkpoint is damaged: {0}")]
    Damaged(String),
}

impl Pipeline {
    /// The state to checkpoint. Flush first: waiting evaluations are not part of it.
    pub fn state(&mut self) -> Result<PipelineState, ArrowError> {
        debug_assert!(self.batch.is_empty(), "checkpoint between batches only");
        let mut windows = Vec::with_capacity(self.windows.len());
        for (&start, window) in &mut self.windows {
            if let Some(mut building) = window.early.take() {
                let a = building.activity.finish()?;
                let s = building.call_scopes.finish()?;
                window.early_done.push((a, s, building.rows));
            }
            let early = if window.early_done.is_empty() {
                None
            } else {
                let a: Vec<_> = window.early_done.iter().map(|e| e.0.clone()).collect();
                let s: Vec<_> = window.early_done.iter().map(|e| e.1.clone()).collect();
                let rows = window.early_done.iter().map(|e| e.2).sum();
                Some((
                    ipc_hex(&concat_batches(&Activity::schema(), &a)?)?,
                    ipc_hex(&concat_batches(&CallScopes::schema(), &s)?)?,
                    rows,
                ))
            };
            windows.push(WindowState {
                start,
                end: window.end,
                events: window.events,
                early,
                identities: window.identities.clone(),
                ids: hex_ids(&window.ids),
            });
        }
        Ok(PipelineState {
            version: STATE_VERSION,
            rules: self.rules().iter().map(|r| r.id.clone()).collect(),
            clock: self.clock.clone(),
            seq: self.seq,
            pending: self.pending.values().flatten().cloned().collect(),
            windows,
            inventory: self.inventory.clone(),
            lifecycle: self.lifecycle.clone(),
            last_eval: self.last_eval,
            engine_runs: self.engine.runs(),
        })
    }

    /// Continues from a checkpointed state (on a fresh pipeline with the current rules).
    pub fn restore(&mut self, state: PipelineState) -> Result<(), RestoreError> {
        if state.version != STATE_VERSION {
            return Err(RestoreError::Version {
                found: state.version,
            });
        }
        let (w, l) = state.clock.settings();
        if (w, l) != self.clock.settings() {
            let (cw, cl) = self.clock.settings();
            return Err(RestoreError::Settings(w, l, cw, cl));
        }
        let damaged = |e: String| RestoreError::Damaged(e);
        let mut seen = std::collections::HashSet::default();
        let mut windows = BTreeMap::new();
        for w in state.windows {
            let ids = unhex_ids(&w.ids).map_err(damaged)?;
            seen.extend(ids.iter().copied());
            let early_done = match w.early {
                Some((a, s, rows)) => vec![(
                    ipc_unhex(&a, &Activity::schema()).map_err(damaged)?,
                    ipc_unhex(&s, &CallScopes::schema()).map_err(damaged)?,
                    rows,
                )],
                None => Vec::new(),
            };
            windows.insert(
                w.start,
                OpenWindow {
                    end: w.end,
                    events: w.events,
                    early: None,
                    early_done,
                    identities: w.identities,
                    ids,
                },
            );
        }
        // Findings refer to rules by index: renumber them for the rules loaded now.
        let current: Vec<String> = self.rules().iter().map(|r| r.id.clone()).collect();
        let mut lifecycle = state.lifecycle;
        if state.rules != current {
            let map: Vec<Option<usize>> = state
                .rules
                .iter()
                .map(|id| current.iter().position(|c| c == id))
                .collect();
            lifecycle.remap_rules(&map);
        }
        lifecycle.set_settings(self.options.dedup_period, self.options.window);
        self.clock = state.clock;
        self.seen = seen;
        self.seq = state.seq;
        self.pending = BTreeMap::new();
        for event in state.pending {
            self.pending
                .entry((event.time, event.is_activity()))
                .or_default()
                .push(event);
        }
        self.windows = windows;
        self.inventory = state.inventory;
        self.inventory.set_forget_after(self.options.forget_after);
        self.lifecycle = lifecycle;
        self.last_eval = state.last_eval;
        self.engine.continue_runs_after(state.engine_runs);
        Ok(())
    }
}

fn hex_ids(ids: &[u128]) -> String {
    let mut text = String::with_capacity(ids.len() * 32);
    for id in ids {
        let _ = write!(text, "{id:032x}");
    }
    text
}

fn unhex_ids(text: &str) -> Result<Vec<u128>, String> {
    if !text.len().is_multiple_of(32) {
        return Err("event id hashes".into());
    }
    text.as_bytes()
        .chunks(32)
        .map(|chunk| {
            let text = std::str::from_utf8(chunk).map_err(|e| e.to_string())?;
            u128::from_str_radix(text, 16).map_err(|e| e.to_string())
        })
        .collect()
}

fn ipc_hex(batch: &RecordBatch) -> Result<String, ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    let bytes = writer.into_inner()?;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

fn ipc_unhex(text: &str, schema: &arrow::datatypes::SchemaRef) -> Result<RecordBatch, String> {
    if !text.len().is_multiple_of(2) {
        return Err("odd hex length".into());
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect::<Result<Vec<u8>, String>>()?;
    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    concat_batches(schema, &batches).map_err(|e| e.to_string())
}
