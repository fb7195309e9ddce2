//! Incremental evaluation: uses and tool calls that only delay findings skip the snapshot.
//!
//! Three of four events are uses and calls; all they change is an activity timestamp
//! ([`Fact`]) that only moves later. For a rule deferrable on that fact (proven from its
//! plan, [`crate::engine::footprint`]) a later value can only make a finding due later.
//! So when the identity has no open alert on a rule reading the fact, the use updates the
//! inventory and nothing else: the identity's pending finding keeps its wake-up at the old,
//! earlier due time, and is judged then from a fresh snapshot that sees every use since.
//!
//! That argument needs the lifecycle to know the identity's candidates, which it does once
//! their batch has run. An identity snapshotted earlier in the *current* batch is the one
//! case it does not: its deferred changes are logged ([`Deferred`]). When the batch runs,
//! an identity whose candidates on a reading rule fall due within the batch (the only way
//! a deferred change could alter an alert of the batch) gets the snapshots eager
//! evaluation would have taken, rebuilt from its last snapshot with the logged values
//! ([`repair`]): between two snapshots of an identity only deferred facts changed.
//! Results are byte-identical to eager evaluation; `--eval eager` keeps the old path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray, UInt32Array, UInt64Array,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::{TimestampMicrosecondType, UInt64Type};

use super::PipelineError;
use super::batch::Batch;
use crate::alert::lifecycle::{Lifecycle, Snapshot};
use crate::engine::footprint::{Fact, Footprint};
use crate::engine::rule::RuleKind;
use crate::engine::{Engine, Finding, Results, tables};
use crate::event::Micros;
use crate::inventory::Judging;

/// Which rules read each fact, and whether all of them can wait for it.
#[derive(Debug, Clone, Default)]
pub struct Readers {
    rules: [Vec<usize>; 3],
    deferrable: [bool; 3],
    deferrable_from_null: [bool; 3],
    /// Whether the rule reads any fact, by rule index.
    any: Vec<bool>,
}

impl Readers {
    /// From the rules' footprints, by rule index.
    pub fn new(footprints: &[Footprint]) -> Self {
        let mut readers = Readers {
            any: footprints.iter().map(|f| f.reads.contains(&true)).collect(),
            ..Default::default()
        };
        for fact in Fact::ALL {
            let i = fact as usize;
            readers.rules[i] = (0..footprints.len())
                .filter(|&r| footprints[r].reads(fact))
                .collect();
            readers.deferrable[i] = readers.rules[i].iter().all(|&r| footprints[r].defers(fact));
            readers.deferrable_from_null[i] = readers.rules[i]
                .iter()
                .all(|&r| footprints[r].defers_from_null(fact));
        }
        readers
    }
}

/// A deferred change of an identity snapshotted earlier in the batch.
#[derive(Debug, Clone)]
struct Touch {
    /// The evaluation it precedes (index in the batch).
    eval: u32,
    /// The identity's latest snapshot in the batch when it happened.
    base: u32,
    fact: Fact,
    key: Option<String>,
    at: Micros,
}

/// The deferred changes of the current batch.
#[derive(Debug, Default)]
pub struct Deferred {
    /// Identity → (evaluation index, snapshot id) of its latest snapshot in the batch.
    latest: crate::hashing::FastMap<String, (u32, u32)>,
    touches: Vec<Touch>,
}

impl Deferred {
    /// Whether any change was deferred for an identity snapshotted in the batch.
    pub fn has_touches(&self) -> bool {
        !self.touches.is_empty()
    }

    /// Records that `identity` was snapshotted as `sid` at evaluation `eval` of the batch.
    pub fn snapshotted(&mut self, identity: &str, eval: usize, sid: usize) {
        let at = (eval as u32, sid as u32);
        match self.latest.get_mut(identity) {
            Some(slot) => *slot = at,
            None => {
                self.latest.insert(identity.to_owned(), at);
            }
        }
    }
}

/// [`Judging`] of incremental evaluation.
pub struct Incremental<'a> {
    pub readers: &'a Readers,
    pub lifecycle: &'a Lifecycle,
    pub deferred: &'a mut Deferred,
    /// Index in the batch of the evaluation the event precedes.
    pub next_eval: usize,
    /// Counts changes that skipped judging.
    pub count: &'a mut u64,
}

impl Judging for Incremental<'_> {
    fn eager(&self) -> bool {
        false
    }

    fn defer(
        &mut self,
        identity: &str,
        fact: Fact,
        key: Option<&str>,
        at: Micros,
        first: bool,
    ) -> bool {
        let i = fact as usize;
        let rules = &self.readers.rules[i];
        let deferrable = if first {
            self.readers.deferrable_from_null[i]
        } else {
            self.readers.deferrable[i]
        };
        if !deferrable || self.lifecycle.has_open_on(identity, rules) {
            return false;
        }
        if !rules.is_empty()
            && let Some(&(_, base)) = self.deferred.latest.get(identity)
        {
            self.deferred.touches.push(Touch {
                eval: self.next_eval as u32,
                base,
                fact,
                key: key.map(str::to_owned),
                at,
            });
        }
        *self.count += 1;
        true
    }
}

/// The grown facts of one rebuilt snapshot: (fact, credential or scope) → value.
type Patches = HashMap<(Fact, Option<String>), Micros>;

/// The snapshots eager evaluation would have taken where a deferred change matters.
#[derive(Debug, Default)]
pub struct Repairs {
    /// (evaluation index, snapshot), in evaluation order.
    pub snapshots: Vec<(usize, Snapshot)>,
    /// The query results the candidates point into.
    pub results: Option<Results>,
    /// Identities whose deferred change precedes an evaluation of a later batch: they are
    /// judged there.
    pub mark: Vec<String>,
}

/// Finds the identities of `batch` whose deferred changes could alter an alert of the
/// batch — a candidate on a reading rule due by `horizon` — and rebuilds the snapshots
/// eager evaluation would have taken of them, then runs the state rules over those.
/// `state` are the batch's state tables, `by_sid` their candidates.
pub async fn repair(
    engine: &Engine,
    readers: &Readers,
    batch: &mut Batch,
    state: &[RecordBatch],
    by_sid: &[Vec<Finding>],
    horizon: Micros,
    mut timed: impl FnMut(usize, std::time::Duration),
) -> Result<Repairs, PipelineError> {
    let mut out = Repairs::default();
    let touches = std::mem::take(&mut batch.deferred.touches);
    batch.deferred.latest.clear();
    if touches.is_empty() {
        return Ok(out);
    }
    let evals = batch.evals.len() as u32;
    let mut sid_eval = vec![0u32; batch.sids.len()];
    for (i, eval) in batch.evals.iter().enumerate() {
        for sid in eval.sids.clone() {
            sid_eval[sid] = i as u32;
        }
    }
    let identity_of = |sid: u32| batch.sids[sid as usize].0.as_str();

    let touched: HashSet<&str> = touches.iter().map(|t| identity_of(t.base)).collect();
    // Real snapshots of the touched identities: where they were taken, and whether one
    // holds a candidate on a reading rule due within the batch.
    let mut real: HashMap<&str, HashSet<u32>> = HashMap::new();
    let mut conflict: HashSet<&str> = HashSet::new();
    for (sid, (identity, _)) in batch.sids.iter().enumerate() {
        if !touched.contains(identity.as_str()) {
            continue;
        }
        real.entry(identity.as_str())
            .or_default()
            .insert(sid_eval[sid]);
        if by_sid[sid]
            .iter()
            .any(|f| readers.any[f.rule] && f.due_at() <= horizon)
        {
            conflict.insert(identity.as_str());
        }
    }

    // Per (evaluation, base snapshot) of a conflicting identity: the facts grown since the
    // base, as of that evaluation (a later touch before it overwrites with more).
    let mut wanted: BTreeMap<(u32, u32), Patches> = BTreeMap::new();
    let mut current: HashMap<&str, (u32, Patches)> = HashMap::new();
    let mut mark = HashSet::new();
    for touch in &touches {
        let identity = identity_of(touch.base);
        if touch.eval >= evals {
            mark.insert(identity.to_owned());
            continue;
        }
        if !conflict.contains(identity) {
            continue;
        }
        let (base, patches) = current
            .entry(identity)
            .or_insert_with(|| (touch.base, Patches::new()));
        if *base != touch.base {
            *base = touch.base;
            patches.clear();
        }
        let slot = patches
            .entry((touch.fact, touch.key.clone()))
            .or_insert(touch.at);
        *slot = (*slot).max(touch.at);
        if real[identity].contains(&touch.eval) {
            continue;
        }
        wanted.insert((touch.eval, touch.base), patches.clone());
    }
    out.mark = mark.into_iter().collect();
    out.mark.sort();
    // In evaluation order.
    let wanted: Vec<(u32, u32, Patches)> = wanted
        .into_iter()
        .map(|((eval, base), patches)| (eval, base, patches))
        .collect();
    if wanted.is_empty() {
        return Ok(out);
    }

    let bases: Vec<u32> = wanted.iter().map(|(_, base, _)| *base).collect();
    let mut tables = Vec::with_capacity(7);
    for table in state {
        tables.push(rebuild(table, &bases, &wanted)?);
    }
    for (_, schema) in tables::all_schemas().into_iter().skip(state.len()) {
        tables.push(RecordBatch::new_empty(schema));
    }
    let mut by_repair: Vec<Vec<Finding>> = vec![Vec::new(); wanted.len()];
    let mut later: Vec<Option<Micros>> = vec![None; wanted.len()];
    let results = engine
        .run(tables, &[RuleKind::State], horizon, |rule, found, took| {
            timed(rule, took);
            earliest(&mut later, &found.later);
            for finding in found.findings {
                if let Some(slot) = finding.sid.and_then(|s| by_repair.get_mut(s as usize)) {
                    slot.push(finding);
                }
            }
        })
        .await?;
    for (((eval, base, _), candidates), later) in wanted.iter().zip(by_repair).zip(later) {
        let (identity, owner) = &batch.sids[*base as usize];
        out.snapshots.push((
            *eval as usize,
            Snapshot {
                identity: identity.clone(),
                owner: owner.clone(),
                candidates,
                later,
            },
        ));
    }
    out.results = Some(results);
    Ok(out)
}

/// Lowers each snapshot's earliest later due time by the (snapshot id, due time) pairs of
/// `found`.
pub fn earliest(later: &mut [Option<Micros>], found: &[(u64, Micros)]) {
    for &(sid, due) in found {
        if let Some(slot) = later.get_mut(sid as usize) {
            *slot = Some(slot.map_or(due, |t| t.min(due)));
        }
    }
}

/// The rows of `table` of each wanted repair's base snapshot, renumbered to the repair's
/// index, with the grown facts patched in.
fn rebuild(
    table: &RecordBatch,
    bases: &[u32],
    wanted: &[(u32, u32, Patches)],
) -> Result<RecordBatch, PipelineError> {
    let schema = table.schema();
    let sid_col = schema.index_of("sid")?;
    let needed: HashSet<u64> = bases.iter().map(|&b| u64::from(b)).collect();
    let mut rows_of: HashMap<u64, Vec<u32>> = HashMap::new();
    let sids = table.column(sid_col).as_primitive::<UInt64Type>();
    for row in 0..table.num_rows() {
        let sid = sids.value(row);
        if needed.contains(&sid) {
            rows_of.entry(sid).or_default().push(row as u32);
        }
    }
    let mut indices = Vec::new();
    let mut repair_of_row = Vec::new();
    for (repair, base) in bases.iter().enumerate() {
        for &row in rows_of.get(&u64::from(*base)).map_or(&[][..], |v| &v[..]) {
            indices.push(row);
            repair_of_row.push(repair);
        }
    }
    let taken = take_record_batch(table, &UInt32Array::from(indices))?;
    let mut columns: Vec<ArrayRef> = taken.columns().to_vec();
    columns[sid_col] = Arc::new(UInt64Array::from_iter_values(
        repair_of_row.iter().map(|&r| r as u64),
    ));
    for fact in Fact::ALL {
        let Ok(col) = schema.index_of(fact.column()) else {
            continue;
        };
        let key_col = match fact {
            Fact::LastUsed => Some(schema.index_of("credential")?),
            Fact::LastExercised => Some(schema.index_of("scope")?),
            Fact::LastActivity => None,
        };
        let old = taken.column(col).as_primitive::<TimestampMicrosecondType>();
        let keys = key_col.map(|k| taken.column(k).as_string::<i32>().clone());
        let patched: TimestampMicrosecondArray = (0..taken.num_rows())
            .map(|row| {
                let key = keys
                    .as_ref()
                    .filter(|k| !k.is_null(row))
                    .map(|k| k.value(row).to_owned());
                let grown = wanted[repair_of_row[row]].2.get(&(fact, key)).copied();
                let before = (!old.is_null(row)).then(|| old.value(row));
                match (before, grown) {
                    (Some(b), Some(g)) => Some(b.max(g)),
                    (b, g) => b.or(g),
                }
            })
            .collect();
        columns[col] = Arc::new(patched);
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}
