//! `nhi-drift replay`: recorded `.jsonl` files through the shared pipeline, alerts to a
//! writer, dead letters to another, and a summary of the run.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::alert::Alert;
use crate::alert::format::AlertFormat;
use crate::event::decode::Origin;
use crate::event::{DeadLetter, Decoder, Micros};
use crate::pipeline::{Pipeline, PipelineError, Stats};

/// Errors that stop a replay (bad records never do).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing output: {0}")]
    Write(#[source] std::io::Error),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// The `.jsonl` files under `paths`: files as given, directories searched recursively,
/// each directory's files in name order.
pub fn input_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReplayError> {
    files_under(paths, &|path| {
        path.extension().is_some_and(|e| e == "jsonl")
    })
    .map_err(|(path, source)| ReplayError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The files under `paths`: files as given, directories searched recursively (each
/// directory's entries in name order) for the files `wanted` accepts. An error comes with
/// the path being read.
pub fn files_under(
    paths: &[PathBuf],
    wanted: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, &mut files, true, wanted)?;
    }
    Ok(files)
}

fn collect(
    path: &Path,
    out: &mut Vec<PathBuf>,
    explicit: bool,
    wanted: &dyn Fn(&Path) -> bool,
) -> Result<(), (PathBuf, std::io::Error)> {
    let read_err = |source| (path.to_owned(), source);
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            collect(&entry, out, false, wanted)?;
        }
    } else if explicit || wanted(path) {
        out.push(path.to_owned());
    }
    Ok(())
}

/// Where a replay's outputs go.
pub struct Sinks<'a> {
    pub format: AlertFormat,
    pub alerts: &'a mut dyn Write,
    /// Dead letters as JSON lines; `None` reports them through `tracing` instead.
    pub dead_letters: Option<&'a mut dyn Write>,
}

impl Sinks<'_> {
    fn alerts(&mut self, alerts: &[Alert]) -> Result<(), ReplayError> {
        for alert in alerts {
            let line = self.format.render(alert).to_string();
            writeln!(self.alerts, "{line}").map_err(ReplayError::Write)?;
        }
        Ok(())
    }

    fn dead_letter(&mut self, letter: &DeadLetter, reported: &mut u64) -> Result<(), ReplayError> {
        match self.dead_letters.as_mut() {
            Some(out) => writeln!(out, "{}", letter.to_json()).map_err(ReplayError::Write),
            None => {
                *reported += 1;
                if *reported <= 20 {
                    tracing::warn!(
                        message = "Rejected record.",
                        reason = letter.reject.reason.as_str(),
                        error = %letter.reject.error,
                        file = %letter.origin.topic,
                        line = letter.origin.offset,
                    );
                } else if *reported == 21 {
                    tracing::warn!(
                        "More records rejected; pass --dead-letter FILE to keep them all."
                    );
                }
                Ok(())
            }
        }
    }
}

/// The outcome of a replay.
#[derive(Debug, Clone)]
pub struct Summary {
    pub stats: Stats,
    pub elapsed: Duration,
    pub files: usize,
}

/// Reads one line, keeping at most `limit + 1` bytes of it; returns the full length, or
/// `None` at end of input. Bounded so a huge line cannot exhaust memory.
fn read_bounded_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<usize>> {
    buf.clear();
    let mut total = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok((total > 0).then_some(total));
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = (limit + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        total += take;
        reader.consume(take);
        if done {
            return Ok(Some(total));
        }
    }
}

/// Records per chunk the reader thread hands over.
const CHUNK: usize = 1024;
/// Chunks decoded ahead of the pipeline.
const CHUNKS_AHEAD: usize = 16;

/// One record as the reader thread decoded it.
type Decoded = Result<crate::event::Event, DeadLetter>;

/// What the reader thread sends: decoded records in input order, with the bytes read so
/// far, or the read error that ends the input.
type ReadChunk = Result<(Vec<Decoded>, u64), ReplayError>;

/// One input of a replay: a `.jsonl` file, or §1 JSON lines already in memory (the
/// adapted events of real-world sources).
#[derive(Debug, Clone)]
pub enum Input {
    /// A file of JSON lines.
    File(PathBuf),
    /// JSON lines in memory, named for dead letters.
    Memory {
        name: String,
        lines: std::sync::Arc<Vec<u8>>,
    },
}

/// Replays `files` through `pipeline` and finishes at `as_of`. A reader thread reads and
/// decodes the records, in order and a bounded number of chunks ahead, so decoding runs
/// beside evaluation as it does in the service.
pub async fn replay(
    pipeline: &mut Pipeline,
    files: &[PathBuf],
    as_of: Option<Micros>,
    decoder: &Decoder,
    sinks: &mut Sinks<'_>,
    progress: impl FnMut(&Stats, u64),
) -> Result<Summary, ReplayError> {
    let inputs: Vec<Input> = files.iter().cloned().map(Input::File).collect();
    replay_inputs(pipeline, &inputs, as_of, decoder, sinks, progress).await
}

/// [`replay`] over inputs that may also be in memory, read in the order given.
pub async fn replay_inputs(
    pipeline: &mut Pipeline,
    files: &[Input],
    as_of: Option<Micros>,
    decoder: &Decoder,
    sinks: &mut Sinks<'_>,
    mut progress: impl FnMut(&Stats, u64),
) -> Result<Summary, ReplayError> {
    let started = Instant::now();
    let mut reported = 0;
    let (tx, rx) = std::sync::mpsc::sync_channel::<ReadChunk>(CHUNKS_AHEAD);
    let reader = {
        let (files, decoder) = (files.to_vec(), decoder.clone());
        std::thread::Builder::new()
            .name("nhi-drift-read".into())
            .spawn(move || read_files(&files, &decoder, &tx))
            .map_err(|source| ReplayError::Read {
                path: "reader thread".into(),
                source,
            })?
    };
    // The channel closes when the reader is done (or has sent its error).
    for chunk in rx {
        let (records, bytes_read) = chunk?;
        for record in records {
            match record {
                Ok(event) => pipeline.push_event(event),
                Err(letter) => {
                    pipeline.count_rejected(letter.reject.reason);
                    sinks.dead_letter(&letter, &mut reported)?;
                }
            }
            if pipeline.should_flush() {
                let alerts = pipeline.flush().await?;
                sinks.alerts(&alerts)?;
                progress(&pipeline.stats(), bytes_read);
            }
        }
    }
    let _ = reader.join();
    let alerts = pipeline.finish(as_of).await?;
    sinks.alerts(&alerts)?;
    sinks.alerts.flush().map_err(ReplayError::Write)?;
    if let Some(out) = sinks.dead_letters.as_mut() {
        out.flush().map_err(ReplayError::Write)?;
    }
    Ok(Summary {
        stats: pipeline.stats(),
        elapsed: started.elapsed(),
        files: files.len(),
    })
}

/// The reader thread: every record of `files`, decoded, in chunks; stops early when the
/// pipeline side has gone (an error there).
fn read_files(files: &[Input], decoder: &Decoder, tx: &std::sync::mpsc::SyncSender<ReadChunk>) {
    let mut buf = Vec::with_capacity(4096);
    let mut bytes_read: u64 = 0;
    let mut chunk = Vec::with_capacity(CHUNK);
    for input in files {
        let name = match input {
            Input::File(path) => path.display().to_string(),
            Input::Memory { name, .. } => name.clone(),
        };
        let read_error = |source| ReplayError::Read {
            path: name.clone(),
            source,
        };
        let mut reader: Box<dyn BufRead> = match input {
            Input::File(path) => match File::open(path) {
                Ok(file) => Box::new(BufReader::with_capacity(1 << 20, file)),
                Err(source) => {
                    let _ = tx.send(Err(read_error(source)));
                    return;
                }
            },
            Input::Memory { lines, .. } => Box::new(std::io::Cursor::new(lines.as_slice())),
        };
        let mut line_no: i64 = 0;
        loop {
            let total = match read_bounded_line(&mut reader, &mut buf, decoder.max_event_bytes()) {
                Ok(Some(total)) => total,
                Ok(None) => break,
                Err(source) => {
                    let _ = tx.send(Err(read_error(source)));
                    return;
                }
            };
            line_no += 1;
            bytes_read += total as u64;
            let mut record: &[u8] = &buf;
            if total <= buf.len() {
                record = record.strip_suffix(b"\n").unwrap_or(record);
                record = record.strip_suffix(b"\r").unwrap_or(record);
            }
            if record.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let decoded = if total > buf.len() {
                Err(decoder.reject_partial(record, total))
            } else {
                decoder.decode(record)
            };
            chunk.push(decoded.map_err(|reject| {
                let origin = Origin {
                    topic: name.clone(),
                    partition: None,
                    offset: line_no,
                };
                DeadLetter::new(reject, origin, record)
            }));
            if chunk.len() == CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                if tx.send(Ok((full, bytes_read))).is_err() {
                    return;
                }
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok((chunk, bytes_read)));
    }
}

impl Summary {
    /// The one-screen summary printed to stderr.
    pub fn render(&self, rules: &[crate::engine::rule::Rule]) -> String {
        use std::fmt::Write as _;
        let s = &self.stats;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "replayed {} file(s): {} records in {:.2}s ({:.0} records/s)",
            self.files,
            s.read,
            secs,
            s.read as f64 / secs
        );
        let _ = writeln!(
            out,
            "  accepted {}  duplicates {}  late {}  rejected {}{}",
            s.accepted_total(),
            s.duplicates,
            s.late,
            s.rejected_total(),
            if s.after_as_of > 0 {
                format!("  after --as-of (not evaluated) {}", s.after_as_of)
            } else {
                String::new()
            }
        );
        for (reason, n) in &s.rejected {
            let _ = writeln!(out, "    rejected {:<14} {n}", reason.as_str());
        }
        let _ = writeln!(
            out,
            "  evaluations {}  identity snapshots {}",
            s.evaluations, s.snapshots
        );
        let _ = writeln!(out, "  alerts {}", s.alerts_total());
        for rule in rules {
            let count = |status| {
                s.alerts
                    .get(&(rule.id.clone(), status))
                    .copied()
                    .unwrap_or(0)
            };
            let (open, resolved) = (
                count(crate::alert::Status::Open),
                count(crate::alert::Status::Resolved),
            );
            if open + resolved > 0 {
                let _ = writeln!(
                    out,
                    "    {:<14} {:<30} open {:>6}  resolved {:>6}",
                    rule.id, rule.name, open, resolved
                );
            }
        }
        out
    }
}
