//! Checkpoints: the pipeline state and the next offset of every input partition, written
//! atomically (temporary file, fsync, rename, fsync of the directory) so a crash leaves
//! either the previous checkpoint or the new one, never a torn file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::state::PipelineState;

/// File name inside `checkpoint.dir`.
pub const FILE: &str = "checkpoint.json";

/// One checkpoint.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Next offset to read per input (topic, partition).
    #[serde(with = "crate::pairs")]
    pub offsets: BTreeMap<(String, i32), i64>,
    pub pipeline: PipelineState,
}

/// Checkpoint I/O problems; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable checkpoint: {source}")]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The checkpoint file in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the checkpoint in `dir`, if there is one.
pub fn load(dir: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let path = path_in(dir);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Io { path, source }),
    };
    serde_json::from_reader(BufReader::with_capacity(1 << 20, file))
        .map(Some)
        .map_err(|source| CheckpointError::Format { path, source })
}

/// Writes `checkpoint` into `dir` atomically; returns its size in bytes.
pub fn save(dir: &Path, checkpoint: &Checkpoint) -> Result<u64, CheckpointError> {
    let path = path_in(dir);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CheckpointError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let file = File::create(&tmp).map_err(io(&tmp))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    serde_json::to_writer(&mut writer, checkpoint).map_err(|e| CheckpointError::Io {
        path: tmp.clone(),
        source: e.into(),
    })?;
    writer.flush().map_err(io(&tmp))?;
    let file = writer.into_inner().map_err(|e| CheckpointError::Io {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(&tmp))?;
    let size = file.metadata().map_err(io(&tmp))?.len();
    drop(file);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(size)
}
