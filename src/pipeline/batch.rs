//! One evaluation batch: the evaluations recorded since the last flush and the tables
//! their rules run over. Rules see per-row snapshot ids and windows, so one query run
//! serves many evaluations with exactly the results of running them one by one.

use std::collections::HashMap;

use arrow::compute::concat_batches;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::alert::Owner;
use crate::engine::tables::{Activity, CallScopes, StateBuilders};
use crate::event::Micros;

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
    pub activity: Vec<RecordBatch>,
    pub call_scopes: Vec<RecordBatch>,
    pub evals: Vec<Eval>,
    /// Snapshot id → (identity, owner at the snapshot).
    pub sids: Vec<(String, Owner)>,
    /// Rows added so far, to decide when to flush.
    pub rows: usize,
}

impl Batch {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.evals.is_empty()
    }

    /// All tables in `tables::all_schemas` order.
    pub fn tables(&mut self) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut tables = self.state.finish()?;
        tables.push(concat_batches(&Activity::schema(), &self.activity)?);
        tables.push(concat_batches(&CallScopes::schema(), &self.call_scopes)?);
        Ok(tables)
    }
}
