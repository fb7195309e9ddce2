//! The pipeline's state for checkpoints: everything that the input seen so far built up —
//! clock, pending events, open windows (with their event ids and the activity rows already
//! applied to them), inventory, alert lifecycle. Taken between batches, so no evaluation is
//! ever half done.
//!
//! It is written from a borrowed [`StateView`] (nothing is copied; the service encodes it
//! and hands the bytes to a writer thread) and read back as the owned [`PipelineState`]
//! of the same shape.

use std::collections::{BTreeMap, BTreeSet};
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
pub const STATE_VERSION: u32 = 7;

/// Everything a restarted pipeline needs to continue exactly where this one stood, as read
/// back from a checkpoint. Field for field the shape of [`StateView`].
#[derive(Debug, Deserialize)]
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

/// One open window, as read back.
#[derive(Debug, Deserialize)]
pub struct WindowState {
    pub start: Micros,
    pub end: Micros,
    pub events: u64,
    /// Activity rows applied early, as Arrow IPC streams (activity, call scopes), and
    /// their count.
    pub early: Option<(Vec<u8>, Vec<u8>, usize)>,
    pub identities: BTreeSet<String>,
    /// Hashes of its events' ids (remembered until it closes).
    pub ids: Vec<u128>,
}

/// The pipeline's state, borrowed for writing: [`PipelineState`]'s shape.
#[derive(Debug, Serialize)]
pub struct StateView<'a> {
    pub version: u32,
    pub rules: Vec<&'a str>,
    pub clock: &'a Clock,
    pub seq: u64,
    pub pending: Vec<&'a Event>,
    pub windows: Vec<WindowView<'a>>,
    pub inventory: &'a Inventory,
    pub lifecycle: &'a Lifecycle,
    pub last_eval: Option<Micros>,
    pub engine_runs: u64,
}

/// One open window, borrowed (its early activity encoded as Arrow IPC).
#[derive(Debug, Serialize)]
pub struct WindowView<'a> {
    pub start: Micros,
    pub end: Micros,
    pub events: u64,
    pub early: Option<(Vec<u8>, Vec<u8>, usize)>,
    pub identities: &'a BTreeSet<String>,
    pub ids: &'a [u128],
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
    /// The state to checkpoint, borrowed. Flush first: waiting evaluations are not part
    /// of it.
    pub fn state(&mut self) -> Result<StateView<'_>, ArrowError> {
        debug_assert!(self.batch.is_empty(), "checkpoint between batches only");
        for window in self.windows.values_mut() {
            if let Some(mut building) = window.early.take() {
                let a = building.activity.finish()?;
                let s = building.call_scopes.finish()?;
                window.early_done.push((a, s, building.rows));
            }
        }
        let mut windows = Vec::with_capacity(self.windows.len());
        for (&start, window) in &self.windows {
            let early = if window.early_done.is_empty() {
                None
            } else {
                let a: Vec<_> = window.early_done.iter().map(|e| e.0.clone()).collect();
                let s: Vec<_> = window.early_done.iter().map(|e| e.1.clone()).collect();
                let rows = window.early_done.iter().map(|e| e.2).sum();
                Some((
                    ipc(&concat_batches(&Activity::schema(), &a)?)?,
                    ipc(&concat_batches(&CallScopes::schema(), &s)?)?,
                    rows,
                ))
            };
            windows.push(WindowView {
                start,
                end: window.end,
                events: window.events,
                early,
                identities: &window.identities,
                ids: &window.ids,
            });
        }
        Ok(StateView {
            version: STATE_VERSION,
            rules: self.engine.rules().iter().map(|r| r.id.as_str()).collect(),
            clock: &self.clock,
            seq: self.seq,
            pending: self.pending.values().flatten().collect(),
            windows,
            inventory: &self.inventory,
            lifecycle: &self.lifecycle,
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
            let ids = w.ids;
            seen.extend(ids.iter().copied());
            let early_done = match w.early {
                Some((a, s, rows)) => vec![(
                    from_ipc(a, &Activity::schema()).map_err(damaged)?,
                    from_ipc(s, &CallScopes::schema()).map_err(damaged)?,
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
        self.inventory.share_names();
        let watermark = self.clock.watermark();
        self.inventory.recount_posture(watermark);
        self.inventory.set_forget_after(self.options.forget_after);
        self.lifecycle = lifecycle;
        self.last_eval = state.last_eval;
        self.engine.continue_runs_after(state.engine_runs);
        Ok(())
    }
}

fn ipc(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    writer.into_inner()
}

fn from_ipc(bytes: Vec<u8>, schema: &arrow::datatypes::SchemaRef) -> Result<RecordBatch, String> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    concat_batches(schema, &batches).map_err(|e| e.to_string())
}
