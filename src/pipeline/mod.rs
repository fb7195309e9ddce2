//! The shared pipeline: decode → dedup → event-time clock → inventory → rules → alert
//! lifecycle. `replay` and `run` drive the same [`Pipeline`]; only their edges differ.
//!
//! Records are pushed synchronously. When the watermark closes windows, the events up to
//! each window's end are applied in time order, the window's activity and the snapshots
//! of changed identities are added to the current [`batch::Batch`], and [`Pipeline::flush`]
//! later runs the rules once over the whole batch. Batching changes cost, not results.

pub mod batch;
pub mod deferral;
pub mod state;
pub mod stats;
pub mod view;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::xxh3_128;

use crate::alert::lifecycle::{Evaluation, Lifecycle, Snapshot};
use crate::alert::{Alert, Owner};
use crate::clock::Clock;
use crate::engine::rule::{Rule, RuleError, RuleKind, RuleParams};
use crate::engine::{Engine, EngineError, Finding};
use crate::event::{Body, Event, Micros};
use crate::inventory::enrich::WindowActivity;
use crate::inventory::{Eager, Inventory};
use batch::{Batch, Eval};
use deferral::{Incremental, Readers};
pub use stats::Stats;

/// Events waiting for the watermark, by time and then class (non-activity before
/// activity); each group is put in `id` order when it is applied (contract §2, "equal
/// times"), so the order never depends on files, partitions or arrival.
type PendingEvents = BTreeMap<(Micros, bool), Vec<Event>>;

/// Late events of one input stream since they were last taken ([`Pipeline::take_late`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LateTally {
    pub events: u64,
    /// The most any of them was behind the watermark that made it late.
    pub max_behind: Micros,
}

/// Settings of the pipeline (from config).
#[derive(Debug, Clone)]
pub struct Options {
    pub window: Micros,
    pub allowed_lateness: Micros,
    pub dedup_period: Micros,
    /// Rows (snapshots and activity) after which a batch should be flushed.
    pub batch_rows: usize,
    pub eval: EvalMode,
    /// How long after it ended inventory state is forgotten (`None`: never).
    pub forget_after: Option<Micros>,
}

/// When an identity's state rules are judged again (`engine.eval`, `--eval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EvalMode {
    /// When something a rule reads changed, except uses and calls that can only delay a
    /// finding (see [`deferral`]).
    #[default]
    Incremental,
    /// After every event that names the identity.
    Eager,
}

impl<'de> serde::Deserialize<'de> for EvalMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "incremental" => Ok(EvalMode::Incremental),
            "eager" => Ok(EvalMode::Eager),
            other => Err(serde::de::Error::custom(format!(
                "`{other}` is not one of: incremental, eager"
            ))),
        }
    }
}

impl Options {
    /// Options from a loaded config.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Options {
            window: cfg.time.window.0,
            allowed_lateness: cfg.time.allowed_lateness.0,
            dedup_period: cfg.alerts.dedup_period.0,
            batch_rows: cfg.input.batch_rows,
            eval: cfg.engine.eval,
            forget_after: cfg.inventory.forget_after.0,
        }
    }
}

/// Errors that stop the pipeline (bad input never does).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Event ids are hashed to 128 bits; the hash is already uniform, so no rehashing.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

#[derive(Debug)]
struct OpenWindow {
    end: Micros,
    events: u64,
    /// Activity rows of this window applied before the window began closing (events at
    /// exactly the previous window's end, applied with that window); created on demand.
    early: Option<Box<WindowActivity>>,
    /// Early activity already finished into tables (activity, call scopes, rows), when a
    /// checkpoint was taken or restored while the window was open.
    early_done: Vec<(
        arrow::record_batch::RecordBatch,
        arrow::record_batch::RecordBatch,
        usize,
    )>,
    /// Identities active in the window (callers and credential owners), for owners.
    identities: BTreeSet<String>,
    /// Hashes of the ids of its events: remembered for duplicates until it closes.
    ids: Vec<u128>,
}

/// The detection pipeline.
pub struct Pipeline {
    options: Options,
    clock: Clock,
    seen: HashSet<u128, BuildHasherDefault<IdHasher>>,
    /// Events applied from `pending` so far: each one's number orders activity rows.
    seq: u64,
    pending: PendingEvents,
    windows: BTreeMap<Micros, OpenWindow>,
    inventory: Inventory,
    engine: Engine,
    lifecycle: Lifecycle,
    /// Which rules read the activity facts (incremental evaluation).
    readers: Readers,
    batch: Batch,
    last_eval: Option<Micros>,
    /// Counts since they were last taken ([`Pipeline::take_counts`]).
    stats: Stats,
    /// Counts taken before.
    taken: Stats,
    late: BTreeMap<u32, LateTally>,
}

impl Pipeline {
    /// Plans the rules and builds an empty pipeline.
    pub async fn new(
        options: Options,
        rules: Vec<Rule>,
        params: &RuleParams,
    ) -> Result<Pipeline, PipelineError> {
        let engine = Engine::new(rules, params).await?;
        let readers = Readers::new(&engine.footprints());
        let mut inventory = Inventory::new();
        inventory.set_forget_after(options.forget_after);
        Ok(Pipeline {
            readers,
            inventory,
            clock: Clock::new(options.window, options.allowed_lateness),
            lifecycle: Lifecycle::new(options.dedup_period, options.window),
            options,
            seen: HashSet::default(),
            seq: 0,
            pending: BTreeMap::new(),
            windows: BTreeMap::new(),
            engine,
            batch: Batch::default(),
            last_eval: None,
            stats: Stats::default(),
            taken: Stats::default(),
            late: BTreeMap::new(),
        })
    }

    /// Forgets all input — inventory, windows, findings, counters — and keeps the planned
    /// rules: a fresh pipeline without planning the queries again (e.g. one per fixture).
    pub fn reset(&mut self) {
        self.clock = Clock::new(self.options.window, self.options.allowed_lateness);
        self.lifecycle = Lifecycle::new(self.options.dedup_period, self.options.window);
        self.seen = HashSet::default();
        self.seq = 0;
        self.pending = BTreeMap::new();
        self.windows = BTreeMap::new();
        self.inventory = Inventory::new();
        self.inventory.set_forget_after(self.options.forget_after);
        self.batch = Batch::default();
        self.last_eval = None;
        self.stats = Stats::default();
        self.taken = Stats::default();
        self.late = BTreeMap::new();
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        self.engine.rules()
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        let mut all = self.taken.clone();
        all.add(&self.stats);
        all
    }

    /// The counts since they were last taken: what the service adds to its metrics after
    /// each flush, so they advance by deltas and never by differences of totals.
    pub fn take_counts(&mut self) -> Stats {
        let fresh = std::mem::take(&mut self.stats);
        self.taken.add(&fresh);
        fresh
    }

    /// The inventory (read-only).
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The current watermark.
    pub fn watermark(&self) -> Option<Micros> {
        self.clock.watermark()
    }

    /// Largest accepted event time.
    pub fn max_event_time(&self) -> Option<Micros> {
        self.clock.max_time()
    }

    /// Counts a record rejected by its decoder (it goes to the dead-letter output).
    pub fn count_rejected(&mut self, reason: crate::event::Reason) {
        self.stats.read += 1;
        *self.stats.rejected.entry(reason).or_default() += 1;
    }

    /// Pushes one decoded event of the replay's single stream.
    pub fn push_event(&mut self, event: Event) {
        self.push_decoded(event, 0);
    }

    /// Pushes one decoded event of input `stream` (a Kafka partition; a replay has one).
    pub fn push_decoded(&mut self, event: Event, stream: u32) {
        self.stats.read += 1;
        let id = xxh3_128(event.id.as_bytes());
        if self.seen.contains(&id) {
            self.stats.duplicates += 1;
            return;
        }
        *self.stats.accepted.entry(event.event_type()).or_default() += 1;
        let t = event.time;
        if let Some(behind) = self.clock.late_by(t, stream) {
            // Late events are earlier than everything pending, so applying them now keeps
            // the inventory in time order; they join no window.
            self.stats.late += 1;
            let tally = self.late.entry(stream).or_default();
            tally.events += 1;
            tally.max_behind = tally.max_behind.max(behind);
            // Its window is closed, so its id is not remembered (contract v2): a late
            // redelivery is applied again, which changes nothing (a merge by event time).
            // One older than `forget_after` behind the watermark may concern what was
            // forgotten since: it is counted and changes nothing.
            let ancient = self.options.forget_after.is_some_and(|after| {
                self.clock
                    .watermark()
                    .is_some_and(|w| t < w.saturating_sub(after))
            });
            if !ancient {
                self.apply_event(&event, true);
            }
            return;
        }
        let (start, end) = self.clock.window_of(t);
        let window = self.windows.entry(start).or_insert_with(|| OpenWindow {
            end,
            events: 0,
            early: None,
            early_done: Vec::new(),
            identities: BTreeSet::new(),
            ids: Vec::new(),
        });
        window.events += 1;
        window.ids.push(id);
        self.seen.insert(id);
        self.pending
            .entry((t, event.is_activity()))
            .or_default()
            .push(event);
        self.clock.observe(t, stream);
        self.close_ready_windows();
    }

    /// Moves the clock with the progress of input `stream` without an event: `t` was
    /// read on it (the identity partitions of other tasks, see `service::tasks`).
    pub fn observe_progress(&mut self, t: Micros, stream: u32) {
        if self.clock.late_by(t, stream).is_some() {
            return;
        }
        self.clock.observe(t, stream);
        self.close_ready_windows();
    }

    /// Moves event time to at least `t`, the largest time another task of the same input
    /// has read (see `service::tasks`): it closes windows only as far as this pipeline's
    /// own streams that are behind allow.
    pub fn follow(&mut self, t: Micros) {
        self.clock.follow(t);
        self.close_ready_windows();
    }

    /// Whether an event at `t` from `stream` would be late now.
    pub fn is_late(&self, t: Micros, stream: u32) -> bool {
        self.clock.is_late(t, stream)
    }

    /// The late events per input stream since the last call.
    pub fn take_late(&mut self) -> BTreeMap<u32, LateTally> {
        std::mem::take(&mut self.late)
    }

    /// Announces input streams with records to deliver (see [`Clock::register`]).
    pub fn register_streams(&mut self, streams: &[u32]) {
        for &stream in streams {
            self.clock.register(stream);
        }
    }

    /// Forgets input streams this instance no longer reads.
    pub fn forget_streams(&mut self, streams: &[u32]) {
        for &stream in streams {
            self.clock.forget(stream);
        }
        self.close_ready_windows();
    }

    /// Marks an input stream as caught up (nothing more to read for now) or not; a stream
    /// that is behind holds the watermark back (see [`crate::clock`]).
    pub fn set_caught_up(&mut self, stream: u32, caught_up: bool) {
        self.clock.set_caught_up(stream, caught_up);
        self.close_ready_windows();
    }

    /// Whether every input stream is assigned and caught up: the idle-advance policy may
    /// then move event time (before, records already written could still be on the way).
    pub fn input_caught_up(&self) -> bool {
        self.clock.all_caught_up()
    }

    /// The idle-advance policy: moves event time to `t` without an event, closes the
    /// windows the watermark passes and evaluates state at the new watermark.
    pub fn advance_idle(&mut self, t: Micros) {
        self.clock.advance(t);
        self.close_ready_windows();
        if let Some(watermark) = self.clock.watermark()
            && self.last_eval.is_none_or(|last| watermark > last)
        {
            self.apply_pending_until(watermark, Micros::MIN);
            self.record_eval(watermark, None, true);
        }
    }

    /// Whether enough work waits that [`Pipeline::flush`] should run now.
    pub fn should_flush(&self) -> bool {
        self.batch.rows() >= self.options.batch_rows
    }

    /// Whether any evaluation waits for [`Pipeline::flush`].
    pub fn has_pending_evaluations(&self) -> bool {
        !self.batch.is_empty()
    }

    fn close_ready_windows(&mut self) {
        if let Some(watermark) = self.clock.watermark() {
            self.advance_to(watermark);
        }
    }

    /// Closes the windows ending at or before `limit`, in order, and judges state at every
    /// other window end up to `limit` where a timer falls due (contract v2: state rules
    /// are judged at the end of every window, empty or not; only identities whose state
    /// changed or whose due time falls in the window need judging, so an empty window
    /// without a timer costs nothing).
    fn advance_to(&mut self, limit: Micros) {
        loop {
            let window = self
                .windows
                .first_key_value()
                .filter(|(_, w)| w.end <= limit)
                .map(|(&start, w)| (start, w.end));
            let timer = self.next_timer_end().filter(|&end| end <= limit);
            match (window, timer) {
                // A timer in an empty window before the next window with events.
                (window, Some(end)) if window.is_none_or(|(_, w)| end < w) => {
                    self.apply_pending_until(end, Micros::MIN);
                    self.record_eval(end, None, true);
                }
                (Some((start, end)), _) => {
                    self.apply_pending_until(end, start);
                    self.record_eval(end, Some(start), true);
                }
                (None, _) => break,
            }
        }
        self.inventory.count_until(limit);
    }

    /// The window end at which the earliest timer is judged: the end of the window it
    /// falls in, but never at or before an evaluation already made (a timer that became
    /// due earlier, e.g. the expiry of a credential a late event issued, is judged at the
    /// next window end).
    fn next_timer_end(&mut self) -> Option<Micros> {
        let due = self.inventory.next_timer()?;
        let after = self
            .last_eval
            .map_or(Micros::MIN, |last| last.saturating_add(1));
        let (start, end) = self.clock.window_of(due.max(after));
        Some(if start == due.max(after) { start } else { end })
    }

    /// Applies pending events with time ≤ `limit`, in the contract's order (time, class,
    /// id). Activity of the `closing` window goes straight into the batch; activity of a
    /// later window (an event at exactly `limit`) waits in that window until it closes.
    fn apply_pending_until(&mut self, limit: Micros, closing: Micros) {
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > limit {
                break;
            }
            let ((t, activity), mut events) = entry.remove_entry();
            self.forget_before(t);
            events.sort_unstable_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
            for event in events {
                self.seq += 1;
                self.apply_event(&event, false);
                if activity {
                    self.add_activity(&event, t, closing);
                }
            }
        }
    }

    /// Forgets what ended `forget_after` before a moment earlier than `t` (contract §2.2:
    /// an event at exactly that moment still sees it).
    fn forget_before(&mut self, t: Micros) {
        let forgotten = self.inventory.forget_until(t.saturating_sub(1));
        self.stats.forgotten += forgotten.len() as u64;
    }

    /// Applies one event to the inventory, judging as [`Options::eval`] says.
    fn apply_event(&mut self, event: &Event, late: bool) {
        match self.options.eval {
            EvalMode::Eager => self.inventory.apply_with(event, &mut Eager, late),
            EvalMode::Incremental => {
                let mut judging = Incremental {
                    readers: &self.readers,
                    lifecycle: &self.lifecycle,
                    next_eval: self.batch.evals.len(),
                    deferred: &mut self.batch.deferred,
                    count: &mut self.stats.deferred,
                };
                self.inventory.apply_with(event, &mut judging, late);
            }
        }
    }

    /// Enriches one applied use or call into its window's activity rows.
    fn add_activity(&mut self, event: &Event, t: Micros, closing: Micros) {
        let (start, end) = self.clock.window_of(t);
        let Some(window) = self.windows.get_mut(&start) else {
            return;
        };
        let rows = if start == closing {
            &mut self.batch.activity
        } else {
            window
                .early
                .get_or_insert_with(|| Box::new(WindowActivity::small()))
        };
        self.inventory.enrich(event, self.seq, (start, end), rows);
        if let Some(identity) = &event.identity
            && !window.identities.contains(identity)
        {
            window.identities.insert(identity.clone());
        }
        let credential = match &event.body {
            Body::CredentialUsed(u) => Some(&u.credential),
            Body::ToolCalled(c) => c.credential.as_ref(),
            _ => None,
        };
        if let Some(owner) = credential.and_then(|c| self.inventory.credential(c))
            && !window.identities.contains(&*owner.identity)
        {
            window.identities.insert(owner.identity.to_string());
        }
    }

    /// Records one evaluation at `now`: the window starting at `window` (removed from the
    /// open windows) and, when `run_state`, snapshots of every changed identity.
    fn record_eval(&mut self, now: Micros, window: Option<Micros>, run_state: bool) {
        let mut eval = Eval {
            now,
            window: None,
            run_state,
            window_owners: HashMap::new(),
            sids: 0..0,
        };
        if let Some((start, open)) =
            window.and_then(|start| self.windows.remove(&start).map(|open| (start, open)))
        {
            for id in &open.ids {
                self.seen.remove(id);
            }
            eval.window = Some((start, open.end));
            for identity in &open.identities {
                eval.window_owners
                    .insert(identity.clone(), owner_of(&self.inventory, identity));
            }
            for (activity, call_scopes, rows) in open.early_done {
                self.batch.add_finished(activity, call_scopes, rows);
            }
            if let Some(early) = open.early {
                self.batch.add_early(*early);
            }
        }
        let first_sid = self.batch.sids.len();
        if run_state {
            self.forget_before(now);
            for identity in self.inventory.take_dirty(now) {
                let sid = self.batch.sids.len();
                if self
                    .inventory
                    .snapshot(&identity, now, sid as u64, &mut self.batch.state)
                {
                    if self.options.eval == EvalMode::Incremental {
                        let eval = self.batch.evals.len();
                        self.batch.deferred.snapshotted(&identity, eval, sid);
                    }
                    let owner = owner_of(&self.inventory, &identity);
                    self.batch.sids.push((identity.to_string(), owner));
                }
            }
        }
        eval.sids = first_sid..self.batch.sids.len();
        self.stats.snapshots += eval.sids.len() as u64;
        self.stats.evaluations += 1;
        self.last_eval = Some(now);
        self.batch.evals.push(eval);
    }

    /// Runs the rules over the waiting evaluations and returns their alerts, in order.
    pub async fn flush(&mut self) -> Result<Vec<Alert>, PipelineError> {
        let mut alerts = self.run_batch().await?;
        // Findings of a batch that fall due later set timers; those the watermark has
        // already passed are judged now (which may set more, each later than the last
        // evaluation, so this ends at the watermark). Nothing waits when this returns: a
        // checkpoint may follow.
        loop {
            self.close_ready_windows();
            if self.batch.is_empty() {
                return Ok(alerts);
            }
            alerts.extend(self.run_batch().await?);
        }
    }

    async fn run_batch(&mut self) -> Result<Vec<Alert>, PipelineError> {
        if self.batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = std::mem::take(&mut self.batch);
        let tables = batch.tables()?;
        let state_tables: Vec<_> = if batch.deferred.has_touches() {
            tables[..5].to_vec()
        } else {
            Vec::new()
        };
        let mut kinds = Vec::new();
        if tables[0].num_rows() > 0 {
            kinds.push(RuleKind::State);
        }
        if tables[5].num_rows() > 0 {
            kinds.push(RuleKind::Window);
        }
        let mut by_sid: Vec<Vec<Finding>> = vec![Vec::new(); batch.sids.len()];
        let mut later: Vec<Option<Micros>> = vec![None; batch.sids.len()];
        let mut by_window: HashMap<Micros, Vec<Finding>> = HashMap::new();
        let rule_ids: Vec<String> = self.rules().iter().map(|r| r.id.clone()).collect();
        let horizon = batch.evals.last().map_or(Micros::MIN, |e| e.now);
        let Pipeline {
            engine,
            lifecycle,
            inventory,
            stats,
            readers,
            ..
        } = self;
        let results = engine
            .run(tables, &kinds, horizon, |rule, found, took| {
                *stats.rule_time.entry(rule_ids[rule].clone()).or_default() += took;
                deferral::earliest(&mut later, &found.later);
                for finding in found.findings {
                    if let Some(slot) = finding.sid.and_then(|s| by_sid.get_mut(s as usize)) {
                        slot.push(finding);
                    } else if let Some((start, _)) = finding.window {
                        by_window.entry(start).or_default().push(finding);
                    }
                }
            })
            .await?;
        let repairs = deferral::repair(
            engine,
            readers,
            &mut batch,
            &state_tables,
            &by_sid,
            horizon,
            |rule, took| *stats.rule_time.entry(rule_ids[rule].clone()).or_default() += took,
        )
        .await?;
        stats.repaired += repairs.snapshots.len() as u64;
        let render = |finding: &Finding| match &repairs.results {
            Some(r) if r.run() == finding.row.run => engine.render(r, finding),
            _ => engine.render(&results, finding),
        };
        lifecycle.begin_batch(horizon);

        let mut repaired = repairs.snapshots.into_iter().peekable();
        let mut alerts = Vec::new();
        for (index, eval) in batch.evals.into_iter().enumerate() {
            let window_findings = eval
                .window
                .and_then(|(start, _)| by_window.remove(&start))
                .unwrap_or_default();
            let mut snapshots: Vec<Snapshot> = eval
                .sids
                .clone()
                .map(|sid| {
                    let (identity, owner) = std::mem::take(&mut batch.sids[sid]);
                    Snapshot {
                        identity,
                        owner,
                        candidates: std::mem::take(&mut by_sid[sid]),
                        later: later[sid],
                    }
                })
                .collect();
            while let Some(snapshot) = repaired.next_if(|(at, _)| *at == index) {
                snapshots.push(snapshot.1);
            }
            let evaluation = Evaluation {
                now: eval.now,
                window_findings,
                window_owners: &eval.window_owners,
                snapshots,
                run_state: eval.run_state,
                window_start: eval.window.map(|(start, _)| start),
            };
            alerts.extend(lifecycle.evaluate(engine.rules(), evaluation, &render));
        }
        for (identity, at) in lifecycle.end_batch() {
            inventory.schedule_wake(at, &identity);
        }
        for identity in &repairs.mark {
            inventory.mark(identity);
        }
        for alert in &alerts {
            *self
                .stats
                .alerts
                .entry((alert.rule_id.clone(), alert.status))
                .or_default() += 1;
        }
        Ok(alerts)
    }

    /// Ends the input: closes every open window and evaluates state once more at `as_of`
    /// (default: the last event time). Events after `as_of` are not evaluated.
    pub async fn finish(&mut self, as_of: Option<Micros>) -> Result<Vec<Alert>, PipelineError> {
        let Some(mut final_now) = as_of.or(self.clock.max_time()) else {
            return self.flush().await;
        };
        if as_of.is_some() {
            let beyond = self
                .pending
                .split_off(&(final_now.saturating_add(1), false));
            for ((t, _), events) in beyond {
                let n = events.len();
                self.stats.after_as_of += n as u64;
                let (start, _) = self.clock.window_of(t);
                if let Some(w) = self.windows.get_mut(&start) {
                    w.events -= n as u64;
                }
            }
            self.windows.retain(|_, w| w.events > 0);
        }
        // Time never runs backwards: an `as_of` before an evaluation already made is moved up.
        final_now = final_now.max(self.last_eval.unwrap_or(Micros::MIN));
        self.advance_to(final_now);
        // Windows ending after the final time: their window rules only.
        while let Some((&start, _)) = self.windows.first_key_value() {
            self.apply_pending_until(final_now, start);
            self.record_eval(final_now, Some(start), false);
        }
        self.apply_pending_until(final_now, Micros::MIN);
        self.record_eval(final_now, None, true);
        self.run_batch().await
    }

    /// Window dedup entries held.
    pub fn window_dedup_entries(&self) -> usize {
        self.lifecycle.window_entries()
    }

    /// Open state alerts per rule id.
    pub fn open_alerts(&self) -> Vec<(String, usize)> {
        let counts = self.lifecycle.open_state_counts(self.rules().len());
        self.rules()
            .iter()
            .zip(counts)
            .map(|(r, c)| (r.id.clone(), c))
            .collect()
    }
}

/// The identity's owners as known now.
fn owner_of(inventory: &Inventory, identity: &str) -> Owner {
    let state = inventory.identity(identity);
    Owner {
        business_owner: state
            .and_then(|s| s.business_owner.as_ref())
            .map(|a| a.principal.to_string()),
        technical_custodian: state
            .and_then(|s| s.technical_custodian.as_ref())
            .map(|a| a.principal.to_string()),
    }
}
