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
//! reached its time, not only when that partition receives something.

use std::collections::BTreeMap;

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

/// The tasks of this instance and the directory they share.
pub struct Tasks {
    tasks: BTreeMap<i32, Task>,
    /// Restored task states not assigned yet.
    saved: BTreeMap<i32, TaskCheckpoint>,
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
        Tasks {
            tasks: BTreeMap::new(),
            saved: saved.into_iter().map(|t| (t.partition, t)).collect(),
            directory: Vec::new(),
            progress: BTreeMap::new(),
            max_time: None,
            options,
            rules,
            params,
        }
    }

    /// Starts the task of every restored state, so every later checkpoint holds them
    /// whether or not their partitions are assigned yet.
    pub async fn start_restored(&mut self) -> Result<(), TaskError> {
        let partitions: Vec<i32> = self.saved.keys().copied().collect();
        for partition in partitions {
            self.task(partition).await?;
        }
        Ok(())
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
        let pipeline =
            Pipeline::new(self.options.clone(), self.rules.clone(), &self.params).await?;
        let mut task = Task {
            pipeline,
            offsets: Offsets::new(),
            directory: BTreeMap::new(),
        };
        if let Some(saved) = self.saved.remove(&partition) {
            task.pipeline
                .restore(saved.pipeline)
                .map_err(|source| TaskError::Restore { partition, source })?;
            task.offsets = saved.offsets;
            task.directory = saved.directory;
        }
        // Its own partitions hold its clock until they deliver or catch up: the directory's
        // progress alone must not move it.
        let own: Vec<u32> = (0..DIRECTORY).map(|t| stream_of(t, partition)).collect();
        task.pipeline.register_streams(&own);
        // The directory read so far: every other partition's events the clock has not
        // passed, its progress, and whether it is caught up.
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
        tracing::info!(partition, tasks = self.tasks.len() + 1, "task started");
        Ok(task)
    }

    /// Announces the assigned input streams: starts the tasks they belong to and registers
    /// each stream with its task.
    pub async fn assigned(&mut self, streams: &[u32]) -> Result<(), TaskError> {
        for &stream in streams {
            let (topic, partition) = partition_of(stream);
            if topic == DIRECTORY {
                self.progress.entry(stream).or_default().caught_up = false;
                for (_, task) in self.others(partition) {
                    task.pipeline.register_streams(&[stream]);
                }
            } else {
                self.task(partition)
                    .await?
                    .pipeline
                    .register_streams(&[stream]);
            }
        }
        Ok(())
    }

    /// Input streams no longer assigned: their tasks stop reading them.
    pub fn revoked(&mut self, streams: &[u32]) {
        for &stream in streams {
            let (_, partition) = partition_of(stream);
            if let Some(task) = self.tasks.get_mut(&partition) {
                task.pipeline.forget_streams(&[stream]);
            }
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
            }
        }
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
