//! Checkpoints: the pipeline state and the next offset of every input partition, in a
//! compact binary form, written atomically (temporary file, fsync, rename, fsync of the
//! directory) so a crash leaves either the previous checkpoint or the new one, never a
//! torn file.
//!
//! The pipeline task only encodes the state, from a borrowed view ([`encode`]); the bytes
//! go to disk on a blocking thread ([`save`]) while the pipeline carries on.
//!
//! Layout: the 8 bytes `NHIDCKPT`, the format version as a little-endian `u32`
//! ([`STATE_VERSION`]), then the [`Checkpoint`] in postcard encoding: per task (partition
//! *p* of the input topics, see `service::tasks`) its offsets and pipeline state.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::state::{PipelineState, STATE_VERSION, StateView};

/// File name inside `checkpoint.dir`.
pub const FILE: &str = "checkpoint.bin";

/// The file of the JSON checkpoints written before the binary format.
pub const OLD_FILE: &str = "checkpoint.json";

/// First bytes of every checkpoint file.
const MAGIC: &[u8; 8] = b"NHIDCKPT";

/// Next offset to read per input (topic, partition).
pub type Offsets = BTreeMap<(String, i32), i64>;

/// One task's part of a checkpoint, as read back: partition *p* of the input topics.
#[derive(Debug)]
pub struct TaskCheckpoint {
    pub partition: i32,
    /// The state's generation on the state topic (`service::state_topic`): 0 for a
    /// state never written there.
    pub generation: u64,
    /// Next offset of the task's input partitions.
    pub offsets: Offsets,
    /// Next offset of each identity partition read as the directory.
    pub directory: BTreeMap<i32, i64>,
    pub pipeline: PipelineState,
}

/// One checkpoint, as read back: the state of every task the instance ran.
#[derive(Debug)]
pub struct Checkpoint {
    pub tasks: Vec<TaskCheckpoint>,
}

impl Checkpoint {
    /// The next offset of every input partition of every task.
    pub fn offsets(&self) -> Offsets {
        self.tasks
            .iter()
            .flat_map(|t| t.offsets.iter().map(|(k, v)| (k.clone(), *v)))
            .collect()
    }
}

#[derive(Deserialize)]
struct Stored {
    tasks: Vec<StoredTask>,
}

#[derive(Deserialize)]
struct StoredTask {
    partition: i32,
    generation: u64,
    offsets: Vec<((String, i32), i64)>,
    directory: Vec<(i32, i64)>,
    pipeline: PipelineState,
}

/// One task to checkpoint, borrowed.
#[derive(Serialize)]
pub struct TaskView<'a> {
    pub partition: i32,
    pub generation: u64,
    pub offsets: Vec<(&'a (String, i32), &'a i64)>,
    pub directory: Vec<(&'a i32, &'a i64)>,
    pub pipeline: StateView<'a>,
}

#[derive(Serialize)]
struct StoredView<'a, 'b> {
    tasks: &'b [TaskView<'a>],
}

/// Checkpoint I/O problems; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable checkpoint: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error(
        "{path}: checkpoint format {found} was written by another version of nhi-drift; this \
         one reads format {STATE_VERSION} (run the version that wrote it, or move the \
         checkpoint directory away to start from empty state at the group's committed offsets)"
    )]
    Version { path: PathBuf, found: u32 },
    #[error(
        "{path}: a JSON checkpoint of an older version of nhi-drift; this one reads only \
         binary checkpoints (format {STATE_VERSION}, `{FILE}`). Run the older version to drain, \
         or move the checkpoint directory away to start from empty state at the group's \
         committed offsets"
    )]
    OldFormat { path: PathBuf },
    #[error("encoding the checkpoint: {0}")]
    Encode(String),
}

/// The checkpoint file in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Encodes a checkpoint of `tasks`.
pub fn encode(tasks: &[TaskView<'_>]) -> Result<Vec<u8>, CheckpointError> {
    let mut bytes = Vec::with_capacity(1 << 20);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&STATE_VERSION.to_le_bytes());
    let stored = StoredView { tasks };
    postcard::to_io(&stored, &mut bytes).map_err(|e| CheckpointError::Encode(e.to_string()))?;
    Ok(bytes)
}

/// Encodes one task as the state topic holds it: the checkpoint header, then the task.
pub fn encode_task(task: &TaskView<'_>) -> Result<Vec<u8>, CheckpointError> {
    let mut bytes = Vec::with_capacity(1 << 16);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&STATE_VERSION.to_le_bytes());
    postcard::to_io(task, &mut bytes).map_err(|e| CheckpointError::Encode(e.to_string()))?;
    Ok(bytes)
}

/// A checkpoint file of tasks encoded by [`encode_task`]: the same bytes as [`encode`]
/// of those tasks (postcard writes a sequence as its length, then its elements).
pub fn file_of(tasks: &[&[u8]]) -> Vec<u8> {
    let header = MAGIC.len() + 4;
    let body: usize = tasks.iter().map(|t| t.len().saturating_sub(header)).sum();
    let mut bytes = Vec::with_capacity(header + 10 + body);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&STATE_VERSION.to_le_bytes());
    let mut n = tasks.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    for task in tasks {
        bytes.extend_from_slice(task.get(header..).unwrap_or_default());
    }
    bytes
}

/// Decodes one task encoded by [`encode_task`], read from `origin` (a topic partition).
pub fn decode_task(origin: &Path, bytes: &[u8]) -> Result<TaskCheckpoint, CheckpointError> {
    let payload = payload(origin, bytes)?;
    let (t, trailing) =
        postcard::take_from_bytes::<StoredTask>(payload).map_err(|e| CheckpointError::Format {
            path: origin.to_owned(),
            reason: format!("{e} (the state is truncated or damaged)"),
        })?;
    if !trailing.is_empty() {
        return Err(CheckpointError::Format {
            path: origin.to_owned(),
            reason: format!(
                "{} bytes after its end (the state is damaged)",
                trailing.len()
            ),
        });
    }
    Ok(TaskCheckpoint {
        partition: t.partition,
        generation: t.generation,
        offsets: t.offsets.into_iter().collect(),
        directory: t.directory.into_iter().collect(),
        pipeline: t.pipeline,
    })
}

/// The postcard body of checkpoint `bytes` read from `path`, after its header.
fn payload<'b>(path: &Path, bytes: &'b [u8]) -> Result<&'b [u8], CheckpointError> {
    let format = |reason: &str| CheckpointError::Format {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return Err(format("it does not start like an nhi-drift checkpoint"));
    };
    let Some((version, payload)) = rest.split_first_chunk::<4>() else {
        return Err(format("it ends inside its header"));
    };
    let found = u32::from_le_bytes(*version);
    if found != STATE_VERSION {
        return Err(CheckpointError::Version {
            path: path.to_owned(),
            found,
        });
    }
    Ok(payload)
}

/// Decodes a checkpoint read from `path`.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let format = |reason: &str| CheckpointError::Format {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let payload = payload(path, bytes)?;
    let (stored, trailing) = postcard::take_from_bytes::<Stored>(payload)
        .map_err(|e| format(&format!("{e} (the file is truncated or damaged)")))?;
    if !trailing.is_empty() {
        return Err(format(&format!(
            "{} bytes after its end (the file is damaged)",
            trailing.len()
        )));
    }
    Ok(Checkpoint {
        tasks: stored
            .tasks
            .into_iter()
            .map(|t| TaskCheckpoint {
                partition: t.partition,
                generation: t.generation,
                offsets: t.offsets.into_iter().collect(),
                directory: t.directory.into_iter().collect(),
                pipeline: t.pipeline,
            })
            .collect(),
    })
}

/// Reads the checkpoint in `dir`, if there is one. An older JSON checkpoint is refused.
pub fn load(dir: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let path = path_in(dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let old = dir.join(OLD_FILE);
            if old.exists() {
                return Err(CheckpointError::OldFormat { path: old });
            }
            return Ok(None);
        }
        Err(source) => return Err(CheckpointError::Io { path, source }),
    };
    decode(&path, &bytes).map(Some)
}

/// Writes the encoded checkpoint `bytes` into `dir` atomically; returns their size.
pub fn save(dir: &Path, bytes: &[u8]) -> Result<u64, CheckpointError> {
    let path = path_in(dir);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CheckpointError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(bytes.len() as u64)
}
