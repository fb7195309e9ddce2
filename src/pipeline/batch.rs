//! One evaluation batch: the evaluations recorded since the last flush and the tables
//! their rules run over. Rules see per-row snapshot ids and windows, so one query run
//! serves many evaluations with exactly the results of running them one by one.

use std::collections::HashMap;

use arrow::compute::concat_batches;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::deferral::Deferred;
use crate::alert::Owner;
use crate::engine::tables::{Activity, CallScopes, StateBuilders};
use crate::event::Micros;
use crate::inventory::enrich::WindowActivity;

/// One evaluation: a window close (window rules, then state rules at its end), the final
/// state evaluation of a replay, or a window-only close at the end of a replay.
#[derive(Debug)]
pub struct Eval {
    pub now: Micros,
    pub window: Option<(Micros, Micros)>,
    pub run_state: bool,
    /// Owners of the identities active in the window, as of its close.
    pub window_owners: HashMap<String, Owner>,
    /// Snapshot ids taken at this evaluation.
    pub sids: std::ops::Range<usize>,
}

/// Evaluations waiting for their query run.
#[derive(Debug, Default)]
pub struct Batch {
    pub state: StateBuilders,
    /// Activity of the windows closed in this batch.
    pub activity: WindowActivity,
    /// Finished activity tables: each window's early activity (see
    /// `Pipeline::apply_pending_until`), then the batch builder's at the end.
    finished_activity: Vec<RecordBatch>,
    finished_call_scopes: Vec<RecordBatch>,
    early_rows: usize,
    pub evals: Vec<Eval>,
    /// Snapshot id → (identity, owner at the snapshot).
    pub sids: Vec<(String, Owner)>,
    /// Deferred changes of identities snapshotted in this batch (incremental evaluation).
    pub deferred: Deferred,
}

impl Batch {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.evals.is_empty()
    }

    /// Rows added so far (every state table's and the activity's), to decide when to
    /// flush: a batch's memory is bounded by its rows, however many credentials or grants
    /// its identities hold.
    pub fn rows(&self) -> usize {
        self.state.rows() + self.activity.rows + self.early_rows
    }

    /// Adds a window's early activity.
    pub fn add_early(&mut self, mut early: WindowActivity) {
        // Builders filled by `Inventory::enrich` always match their schema.
        if let (Ok(a), Ok(s)) = (early.activity.finish(), early.call_scopes.finish()) {
            self.early_rows += early.rows;
            self.finished_activity.push(a);
            self.finished_call_scopes.push(s);
        }
    }

    /// Adds early activity already finished into tables.
    pub fn add_finished(&mut self, activity: RecordBatch, call_scopes: RecordBatch, rows: usize) {
        self.early_rows += rows;
        self.finished_activity.push(activity);
        self.finished_call_scopes.push(call_scopes);
    }

    /// All tables in `tables::all_schemas` order.
    pub fn tables(&mut self) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut tables = self.state.finish()?;
        self.finished_activity
            .push(self.activity.activity.finish()?);
        self.finished_call_scopes
            .push(self.activity.call_scopes.finish()?);
        tables.push(concat_batches(
            &Activity::schema(),
            &self.finished_activity,
        )?);
        tables.push(concat_batches(
            &CallScopes::schema(),
            &self.finished_call_scopes,
        )?);
        Ok(tables)
    }
}
