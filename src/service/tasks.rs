//! Tasks (contract §8): partition *p* of the three input topics is one task, with its own
//! pipeline — inventory, clock, open windows, open findings — and the next offset of its
//! three partitions. Producers key events by identity with the partitioner the Java
//! clients use, so an identity's events are all on partition *p* of each topic and a task
//! holds whole identities; how many instances share the tasks changes no result.
//!
//! # The directory
//! Two event types concern identities on every partition: `principal.departed` and
//! `vendor.offboarded`. Every instance reads the whole identity topic a second time
//! beside its group's assignment (`service::source`, the directory streams
//! [`DIRECTORY`]), as a Kafka Streams global table is read, and gives every task the
//! directory events of the other partitions, applied in event-time order with the task's
//! own events. Each task's clock also follows the progress of every identity partition:
//! the identity records of other partitions move it without an event, and a partition that
//! is behind holds its watermark. So a task's windows do not close before a departure
//! read on another partition up to that time has reached it, whichever instance reads it.
//! A task created later (assigned after a rebalance) is given the directory events read
//! so far that its clock has not passed.
//!
//! # One event time
//! A task's own partitions hold its watermark while they are behind, as one pipeline's
//! partitions do; once they are quiet, event time moves on with the largest time any task
//! has read ([`Tasks::follow`]), as it would in one pipeline reading every partition: a
//! rotation or dormancy falls due on a quiet partition when the input as a whole has
//! reached its time, not only when that partition receives something. Tasks on other
//! instances count too: every task publishes its largest event time to the group's
//! progress topic, which every instance reads ([`Tasks::progress`]).
//!
//! # Moving between instances
//! A task's state goes to the group's state topic at every checkpoint it changed in
//! (`service::state_topic`); an instance assigned a task restores it from there unless
//! the state it holds ([`HeldStates`]: running, parked after a revocation, or from the
//! local checkpoint) is that same generation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::checkpoint::{Offsets, TaskCheckpoint, TaskView};
use super::kafka::{partition_of, stream_of};
use crate::engine::rule::{Rule, RuleParams};
use crate::event::{Body, Event, Micros};
use crate::pipeline::state::RestoreError;
use crate::pipeline::{Options, Pipeline, PipelineError};

/// The topic index of the directory streams in stream ids: the identity topic read in
/// full, one stream per partition, beside the three input topics (0, 1, 2).
pub const DIRECTORY: usize = 3;

/// Whether an event concerns identities on every partition.
pub fn is_directory(event: &Event) -> bool {
    matches!(
        event.body,
        Body::PrincipalDeparted { .. } | Body::VendorOffboarded { .. }
    )
}

/// One task.
pub struct Task {
    pub pipeline: Pipeline,
    /// Next offset per input (topic, partition) of the task, for records pushed.
    pub offsets: Offsets,
    /// Next offset per identity partition read as the directory: a record before it was
    /// given to the task already (the directory is read again from the beginning by
    /// every instance that starts).
    pub directory: BTreeMap<i32, i64>,
    /// Generation of the state last written to the state topic (0: never written).
    pub generation: u64,
    /// Whether the task changed since that state was taken.
    pub dirty: bool,
    /// That state, encoded, for the local checkpoint file.
    pub encoded: Option<Arc<Vec<u8>>>,
    /// The largest event time last published as its progress marker.
    pub published: Option<Micros>,
}

impl Task {
    /// Gives the task directory record `offset` of identity `partition` read on `stream`,
    /// unless it had it.
    fn directory_record(&mut self, partition: i32, stream: u32, offset: i64, event: &Event) {
        let next = self.directory.entry(partition).or_insert(0);
        if offset < *next {
            return;
        }
        *next = offset + 1;
        self.dirty = true;
        if is_directory(event) {
            self.pipeline.push_decoded(event.clone(), stream);
        } else {
            self.pipeline.observe_progress(event.time, stream);
        }
    }
}

/// What was read of one directory stream.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    max_time: Option<Micros>,
    /// Next offset to read.
    next: Option<i64>,
    caught_up: bool,
}

/// A task state this instance holds (running, parked, or in the local checkpoint), as the
/// poll thread sees it when partitions are assigned: if the state topic's latest state of
/// the partition has the same generation, the state held here is that state and is not
/// read again.
#[derive(Debug, Clone)]
pub struct Held {
    pub generation: u64,
    pub offsets: Offsets,
}

/// The states held, by partition; shared with the poll thread.
pub type HeldStates = Arc<Mutex<BTreeMap<i32, Held>>>;

/// The tasks of this instance and the directory they share.
pub struct Tasks {
    tasks: BTreeMap<i32, Task>,
    /// Tasks whose partitions were revoked, after their state was written: kept until the
    /// next assignment says whether they come back (an eager rebalance revokes every
    /// partition before assigning most of them again).
    parked: BTreeMap<i32, Task>,
    /// Task states of the local checkpoint not assigned yet.
    saved: BTreeMap<i32, TaskCheckpoint>,
    held: HeldStates,
    /// Directory events read so far, with their stream and offset.
    directory: Vec<(u32, i64, Event)>,
    progress: BTreeMap<u32, Progress>,
    /// The largest event time any task has read.
    max_time: Option<Micros>,
    options: Options,
    rules: Vec<Rule>,
    params: RuleParams,
}

/// Why a task cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("restoring the state of partition {partition}: {source}")]
    Restore {
        partition: i32,
        source: RestoreError,
    },
}

impl Tasks {
    /// No tasks yet; `saved` are restored states, started as their partitions are assigned.
    pub fn new(
        options: Options,
        rules: Vec<Rule>,
        params: RuleParams,
        saved: Vec<TaskCheckpoint>,
    ) -> Self {
        let held: BTreeMap<i32, Held> = saved
            .iter()
            .map(|t| {
                let held = Held {
                    generation: t.generation,
                    offsets: t.offsets.clone(),
                };
                (t.partition, held)
            })
            .collect();
        Tasks {
            tasks: BTreeMap::new(),
            parked: BTreeMap::new(),
            saved: saved.into_iter().map(|t| (t.partition, t)).collect(),
            held: Arc::new(Mutex::new(held)),
            directory: Vec::new(),
            progress: BTreeMap::new(),
            max_time: None,
            options,
            rules,
            params,
        }
    }

    /// The task states this instance holds, shared with the poll thread.
    pub fn held(&self) -> HeldStates {
        Arc::clone(&self.held)
    }

    /// How many states of the local checkpoint wait for their partitions.
    pub fn saved(&self) -> usize {
        self.saved.len()
    }

    /// The tasks, by partition.
    pub fn iter(&self) -> impl Iterator<Item = (&i32, &Task)> {
        self.tasks.iter()
    }

    /// The tasks' pipelines.
    pub fn pipelines(&self) -> impl Iterator<Item = &Pipeline> {
        self.tasks.values().map(|t| &t.pipeline)
    }

    /// The tasks, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&i32, &mut Task)> {
        self.tasks.iter_mut()
    }

    /// How many tasks run here.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task runs here.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The task of `partition`, started (restored, or empty) if it is not running.
    pub async fn task(&mut self, partition: i32) -> Result<&mut Task, TaskError> {
        if !self.tasks.contains_key(&partition) {
            let task = self.start(partition).await?;
            self.tasks.insert(partition, task);
        }
        Ok(self.tasks.get_mut(&partition).expect("inserted above"))
    }

    async fn start(&mut self, partition: i32) -> Result<Task, TaskError> {
        let saved = self.saved.remove(&partition);
        self.start_from(partition, saved).await
    }

    /// A task from `saved` (or empty), caught up with the directory read so far.
    async fn start_from(
        &mut self,
        partition: i32,
        saved: Option<TaskCheckpoint>,
    ) -> Result<Task, TaskError> {
        let pipeline =
            Pipeline::new(self.options.clone(), self.rules.clone(), &self.params).await?;
        let mut task = Task {
            pipeline,
            offsets: Offsets::new(),
            directory: BTreeMap::new(),
            generation: 0,
            dirty: true,
            encoded: None,
            published: None,
        };
        if let Some(saved) = saved {
            task.pipeline
                .restore(saved.pipeline)
                .map_err(|source| TaskError::Restore { partition, source })?;
            task.offsets = saved.offsets;
            task.directory = saved.directory;
            task.generation = saved.generation;
            // Restored as written: nothing to write until it changes.
            task.dirty = false;
        }
        // Its own partitions hold its clock until they deliver or catch up: the directory's
        // progress alone must not move it.
        let own: Vec<u32> = (0..DIRECTORY).map(|t| stream_of(t, partition)).collect();
        task.pipeline.register_streams(&own);
        self.catch_up(partition, &mut task);
        tracing::info!(partition, tasks = self.tasks.len() + 1, "task started");
        Ok(task)
    }

    /// Gives `task` the directory read so far that it does not have: every other
    /// partition's events its clock has not passed, their progress, and whether they are
    /// caught up; and the largest event time read.
    fn catch_up(&self, partition: i32, task: &mut Task) {
        for (&stream, progress) in &self.progress {
            let other = partition_of(stream).1;
            if other == partition {
                continue;
            }
            task.pipeline.register_streams(&[stream]);
            for (_, offset, event) in self.directory.iter().filter(|(s, ..)| *s == stream) {
                task.directory_record(other, stream, *offset, event);
            }
            if let Some(t) = progress.max_time {
                task.pipeline.observe_progress(t, stream);
            }
            if let Some(&next) = progress.next.as_ref() {
                let seen = task.directory.entry(other).or_insert(0);
                *seen = (*seen).max(next);
            }
            task.pipeline.set_caught_up(stream, progress.caught_up);
        }
        if let Some(t) = self.max_time {
            task.pipeline.follow(t);
        }
    }

    /// Announces the assigned input streams: starts the tasks they belong to and registers
    /// each stream with its task. `restored` are states read from the state topic for some
    /// of them (they replace whatever is held here); the others continue a task held here
    /// (running, parked, or in the local checkpoint) or start empty. A `whole` assignment
    /// (the group's) also drops the parked tasks it does not give back.
    pub async fn assigned(
        &mut self,
        streams: &[u32],
        restored: Vec<TaskCheckpoint>,
        whole: bool,
    ) -> Result<(), TaskError> {
        for state in restored {
            let partition = state.partition;
            self.tasks.remove(&partition);
            self.parked.remove(&partition);
            self.saved.remove(&partition);
            let held = Held {
                generation: state.generation,
                offsets: state.offsets.clone(),
            };
            let task = self.start_from(partition, Some(state)).await?;
            self.tasks.insert(partition, task);
            self.hold(partition, Some(held));
        }
        let mut assigned = BTreeSet::new();
        for &stream in streams {
            let (topic, partition) = partition_of(stream);
            if topic == DIRECTORY {
                self.progress.entry(stream).or_default().caught_up = false;
                for (_, task) in self.others(partition) {
                    task.pipeline.register_streams(&[stream]);
                }
                continue;
            }
            assigned.insert(partition);
            if let Some(mut task) = self.parked.remove(&partition) {
                // Back after a rebalance. Its partitions hold its clock again until the
                // poll thread finds them caught up: they were read up to its state, and
                // were quiet then, but records may have arrived since. Only then is it
                // given the directory's progress it missed meanwhile, which its clock
                // follows as far as they allow.
                let own: Vec<u32> = streams
                    .iter()
                    .copied()
                    .filter(|&s| {
                        let (topic, p) = partition_of(s);
                        topic != DIRECTORY && p == partition
                    })
                    .collect();
                task.pipeline.register_streams(&own);
                self.catch_up(partition, &mut task);
                self.tasks.insert(partition, task);
            }
            self.task(partition)
                .await?
                .pipeline
                .register_streams(&[stream]);
        }
        if whole {
            let gone: Vec<i32> = self
                .parked
                .keys()
                .filter(|p| !assigned.contains(p))
                .copied()
                .collect();
            for partition in gone {
                self.parked.remove(&partition);
                self.hold(partition, None);
                tracing::info!(partition, "task moved to another instance");
            }
        }
        Ok(())
    }

    /// Input streams no longer assigned: a task none of whose streams is assigned any
    /// more is parked (its state written first, by the caller), the others stop reading
    /// them.
    ///
    /// A parked task is kept exactly as its state was written: its own streams still hold
    /// its clock. Forgetting them would let the watermark jump to the largest time read
    /// elsewhere, closing windows over records of its partitions not read yet, which the
    /// task would then find late when it comes back.
    pub fn revoked(&mut self, streams: &[u32]) {
        // With the assignor keeping partition p of every input topic together, a task's
        // three streams are revoked together.
        let idle: Vec<i32> = self
            .tasks
            .keys()
            .filter(|p| (0..DIRECTORY).all(|t| streams.contains(&stream_of(t, **p))))
            .copied()
            .collect();
        for partition in idle {
            if let Some(task) = self.tasks.remove(&partition) {
                self.parked.insert(partition, task);
            }
        }
        for &stream in streams {
            let (_, partition) = partition_of(stream);
            if let Some(task) = self.tasks.get_mut(&partition) {
                task.pipeline.forget_streams(&[stream]);
            }
        }
    }

    /// Records that the state of `partition` at `generation`, holding `offsets`, is on the
    /// state topic (and `encoded` in the local checkpoint).
    pub fn written(
        &mut self,
        partition: i32,
        generation: u64,
        offsets: Offsets,
        encoded: Arc<Vec<u8>>,
    ) {
        let task = self
            .tasks
            .get_mut(&partition)
            .or_else(|| self.parked.get_mut(&partition));
        if let Some(task) = task
            && task.generation < generation
        {
            task.generation = generation;
            task.encoded = Some(encoded);
            let held = Held {
                generation,
                offsets,
            };
            self.hold(partition, Some(held));
        }
    }

    /// The state taken of `partition` was not written: it is taken again next time.
    pub fn retry(&mut self, partition: i32) {
        if let Some(task) = self.tasks.get_mut(&partition) {
            task.dirty = true;
        }
    }

    fn hold(&self, partition: i32, held: Option<Held>) {
        if let Ok(mut map) = self.held.lock() {
            match held {
                Some(held) => map.insert(partition, held),
                None => map.remove(&partition),
            };
        }
    }

    /// Marks every running task as changed (its clock moved without an input record).
    pub fn touch_all(&mut self) {
        for task in self.tasks.values_mut() {
            task.dirty = true;
        }
    }

    /// A stream caught up (or fell behind again).
    pub fn set_caught_up(&mut self, stream: u32, caught_up: bool) {
        let (topic, partition) = partition_of(stream);
        if topic == DIRECTORY {
            self.progress.entry(stream).or_default().caught_up = caught_up;
            for (_, task) in self.others(partition) {
                task.pipeline.set_caught_up(stream, caught_up);
            }
        } else if let Some(task) = self.tasks.get_mut(&partition) {
            task.pipeline.set_caught_up(stream, caught_up);
        }
    }

    /// One event read on a directory stream: a directory event goes to every other
    /// partition's task, any other only moves their clocks.
    pub fn directory_event(&mut self, stream: u32, offset: i64, event: Event) {
        let partition = partition_of(stream).1;
        let progress = self.progress.entry(stream).or_default();
        progress.max_time = Some(progress.max_time.map_or(event.time, |m| m.max(event.time)));
        progress.next = Some(progress.next.map_or(offset + 1, |n| n.max(offset + 1)));
        progress.caught_up = false;
        for (_, task) in self.others(partition) {
            task.directory_record(partition, stream, offset, &event);
        }
        if is_directory(&event) {
            self.directory.push((stream, offset, event));
        }
    }

    /// Moves every task's event time to the largest any of them has read (see the module
    /// documentation); call after pushing records.
    pub fn follow(&mut self) {
        let max = self.pipelines().filter_map(Pipeline::max_event_time).max();
        let Some(max) = max.max(self.max_time) else {
            return;
        };
        self.max_time = Some(max);
        for task in self.tasks.values_mut() {
            if task.pipeline.max_event_time().is_none_or(|t| t < max) {
                task.pipeline.follow(max);
                task.dirty = true;
            }
        }
    }

    /// Progress markers of tasks (here or on other instances): the largest event time
    /// read anywhere, which every task follows (see the module documentation).
    pub fn progress(&mut self, markers: &[(i32, Micros)]) {
        let Some(max) = markers.iter().map(|(_, t)| *t).max() else {
            return;
        };
        self.max_time = Some(self.max_time.map_or(max, |m| m.max(max)));
        self.follow();
    }

    /// The tasks whose largest event time moved since their last marker, with it; marked
    /// as published.
    pub fn unpublished(&mut self) -> Vec<(i32, Micros)> {
        let mut moved = Vec::new();
        for (&partition, task) in &mut self.tasks {
            let Some(t) = task.pipeline.max_event_time() else {
                continue;
            };
            if task.published.is_none_or(|p| p < t) {
                task.published = Some(t);
                moved.push((partition, t));
            }
        }
        moved
    }

    fn others(&mut self, partition: i32) -> impl Iterator<Item = (&i32, &mut Task)> {
        self.tasks.iter_mut().filter(move |(p, _)| **p != partition)
    }

    /// Whether every task has caught up with everything it reads (and there is one).
    pub fn input_caught_up(&self) -> bool {
        !self.tasks.is_empty() && self.pipelines().all(Pipeline::input_caught_up)
    }

    /// Whether any task has enough waiting for a flush.
    pub fn should_flush(&self) -> bool {
        self.pipelines().any(Pipeline::should_flush)
    }

    /// Whether any task has evaluations waiting.
    pub fn has_pending_evaluations(&self) -> bool {
        self.pipelines().any(Pipeline::has_pending_evaluations)
    }

    /// Every task's state with its offsets, borrowed, for a checkpoint (flush first).
    pub fn views(&mut self) -> Result<Vec<TaskView<'_>>, arrow::error::ArrowError> {
        self.tasks
            .iter_mut()
            .map(|(&partition, task)| {
                Ok(TaskView {
                    partition,
                    generation: task.generation,
                    offsets: task.offsets.iter().collect(),
                    directory: task.directory.iter().collect(),
                    pipeline: task.pipeline.state()?,
                })
            })
            .collect()
    }

    /// The next offset of every input partition of every running task.
    pub fn offsets(&self) -> Offsets {
        self.tasks
            .values()
            .flat_map(|t| t.offsets.iter().map(|(k, v)| (k.clone(), *v)))
            .collect()
    }

    /// The stream of a directory partition.
    pub fn directory_stream(partition: i32) -> u32 {
        stream_of(DIRECTORY, partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::rule::load_rules;
    use crate::event::Decoder;

    const DAY: Micros = 86_400_000_000;

    fn event(id: &str, identity: &str, day: u32) -> Event {
        let json = format!(
            r#"{{"id":"{id}","type":"identity.registered","time":"2026-01-{day:02}T09:00:00Z","source":"okta","identity":"{identity}","kind":"service_account","name":"n"}}"#
        );
        Decoder::new(1 << 20)
            .decode(json.as_bytes())
            .expect("valid event")
    }

    fn own_streams(partitions: &[i32]) -> Vec<u32> {
        partitions
            .iter()
            .flat_map(|&p| (0..DIRECTORY).map(move |t| stream_of(t, p)))
            .collect()
    }

    async fn tasks() -> Tasks {
        let config = Config::load_with_env(None, Vec::new()).expect("default config");
        let rules = load_rules(None).expect("built-in rules");
        Tasks::new(
            Options::from_config(&config),
            rules,
            config.rule_params.clone(),
            Vec::new(),
        )
    }

    /// Assigns `streams` and gives task 0 one event on its identity partition; its time.
    async fn started_with_one_event(tasks: &mut Tasks, streams: &[u32]) -> Micros {
        tasks.assigned(streams, Vec::new(), true).await.unwrap();
        let first = event("e1", "svc-a", 1);
        let t0 = first.time;
        tasks
            .task(0)
            .await
            .unwrap()
            .pipeline
            .push_decoded(first, stream_of(0, 0));
        tasks.follow();
        t0
    }

    #[tokio::test]
    async fn a_task_parked_and_given_back_keeps_its_partitions_holding_its_clock() {
        let mut tasks = tasks().await;
        let streams = own_streams(&[0, 1]);
        let t0 = started_with_one_event(&mut tasks, &streams).await;
        // Another instance has read a month further.
        tasks.progress(&[(4, t0 + 30 * DAY)]);
        let behind = t0 + DAY;
        let task = tasks.task(0).await.unwrap();
        assert!(
            !task.pipeline.is_late(behind, stream_of(1, 0)),
            "partition 0 has not delivered: it holds the clock"
        );

        // A rebalance revokes everything and gives the same tasks back.
        tasks.revoked(&streams);
        assert!(tasks.is_empty());
        tasks.assigned(&streams, Vec::new(), true).await.unwrap();
        let task = tasks.task(0).await.unwrap();
        assert!(
            !task.pipeline.is_late(behind, stream_of(1, 0)),
            "parked and back: its records not read yet are still on time"
        );
        task.pipeline
            .push_decoded(event("e2", "svc-b", 2), stream_of(1, 0));
        assert!(task.pipeline.take_late().is_empty());
    }

    #[tokio::test]
    async fn a_task_quiet_when_parked_holds_its_clock_again_when_given_back() {
        let mut tasks = tasks().await;
        let streams = own_streams(&[0, 1]);
        let t0 = started_with_one_event(&mut tasks, &streams).await;
        // Everything read: its partitions are quiet when a rebalance parks it.
        for &stream in &streams {
            tasks.set_caught_up(stream, true);
        }
        tasks.revoked(&streams);
        // Meanwhile other instances read a month further, and records arrive on its
        // partitions too.
        tasks.progress(&[(4, t0 + 30 * DAY)]);
        tasks.assigned(&streams, Vec::new(), true).await.unwrap();
        let behind = t0 + DAY;
        let task = tasks.task(0).await.unwrap();
        assert!(
            !task.pipeline.is_late(behind, stream_of(1, 0)),
            "parked and back: its records not read yet are still on time"
        );
        task.pipeline
            .push_decoded(event("e2", "svc-b", 2), stream_of(1, 0));
        assert!(task.pipeline.take_late().is_empty());
    }

    #[tokio::test]
    async fn a_partly_revoked_task_stops_waiting_for_the_streams_it_lost() {
        let mut tasks = tasks().await;
        let streams = own_streams(&[0]);
        tasks.assigned(&streams, Vec::new(), true).await.unwrap();
        let first = event("e1", "svc-a", 1);
        let t0 = first.time;
        tasks
            .task(0)
            .await
            .unwrap()
            .pipeline
            .push_decoded(first, stream_of(0, 0));
        tasks.progress(&[(4, t0 + 30 * DAY)]);
        for &stream in &streams[..DIRECTORY - 1] {
            tasks.set_caught_up(stream, true);
        }
        let task = tasks.task(0).await.unwrap();
        assert!(!task.pipeline.is_late(t0 + DAY, streams[DIRECTORY - 1]));
        tasks.revoked(&streams[DIRECTORY - 1..]);
        let task = tasks.task(0).await.unwrap();
        assert!(
            task.pipeline.is_late(t0 + DAY, streams[0]),
            "only caught-up streams are left: the clock follows the largest time"
        );
    }
}
