//! Files as adapter input: `--format F PATH...` groups, the files under them, and all of
//! a group adapted, with its events in the contract's order.

use std::path::{Path, PathBuf};

use super::{AdaptConfig, Adapted, AdaptedEvent, Context, Format, adapt_bytes, sort_events};
use crate::event::Decoder;

/// Errors reading adapter input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A path could not be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Paths read with one format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The format of every path in the group.
    pub format: Format,
    /// Files or directories.
    pub paths: Vec<PathBuf>,
}

/// Groups command-line paths by the `--format` given before them: each path takes the
/// format whose option came last before it (by position on the command line), and paths
/// before any `--format` are native §1 events ([`Format::Nhi`]). Groups of one format
/// are merged, in the order their paths came.
pub fn group_paths(formats: &[(usize, Format)], paths: &[(usize, PathBuf)]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (at, path) in paths {
        let format = formats
            .iter()
            .filter(|(f_at, _)| f_at < at)
            .max_by_key(|(f_at, _)| *f_at)
            .map_or(Format::Nhi, |(_, f)| *f);
        match groups.iter_mut().find(|g| g.format == format) {
            Some(group) => group.paths.push(path.clone()),
            None => groups.push(Group {
                format,
                paths: vec![path.clone()],
            }),
        }
    }
    groups
}

/// Extensions of adapter input files found in a directory (a file given by name is
/// always read).
const EXTENSIONS: [&str; 8] = [
    "json", "jsonl", "ndjson", "log", "csv", "yaml", "yml", "txt",
];

/// The files under `paths`: files as given, directories searched recursively in name
/// order for files with a known extension.
pub fn input_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, InputError> {
    let known = |path: &Path| {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
    };
    crate::replay::files_under(paths, &known).map_err(|(path, source)| InputError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Adapts every file of `group`; the events come sorted (see [`sort_events`]). Also
/// returns how many files were read.
pub fn adapt_group(
    group: &Group,
    config: &AdaptConfig,
    decoder: &Decoder,
) -> Result<(Adapted, usize), InputError> {
    let mut all = Adapted::default();
    let files = input_files(&group.paths)?;
    for file in &files {
        let bytes = std::fs::read(file).map_err(|source| InputError::Read {
            path: file.display().to_string(),
            source,
        })?;
        let name = file.display().to_string();
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(&name)
            .to_owned();
        let ctx = Context {
            config,
            input: &stem,
        };
        let mut adapted = adapt_bytes(group.format, &bytes, &ctx, decoder);
        for skipped in &mut adapted.skipped {
            skipped.input.clone_from(&name);
        }
        all.events.append(&mut adapted.events);
        all.skipped.append(&mut adapted.skipped);
        all.counts.add(&adapted.counts);
    }
    sort_events(&mut all.events);
    if group.format == Format::Cloudtrail {
        super::cloudtrail::end_deleted_role_sessions(&mut all.events, decoder);
    }
    Ok((all, files.len()))
}

/// The events as JSON lines.
pub fn to_lines(events: &[AdaptedEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.iter().map(|e| e.line.len() + 1).sum());
    for event in events {
        out.extend_from_slice(event.line.as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_take_the_format_before_them() {
        let p = |s: &str| PathBuf::from(s);
        let groups = group_paths(
            &[(3, Format::Inventory), (5, Format::Cloudtrail)],
            &[
                (1, p("native.jsonl")),
                (4, p("inv.yaml")),
                (6, p("a.json")),
                (7, p("b.json")),
            ],
        );
        assert_eq!(
            groups,
            vec![
                Group {
                    format: Format::Nhi,
                    paths: vec![p("native.jsonl")]
                },
                Group {
                    format: Format::Inventory,
                    paths: vec![p("inv.yaml")]
                },
                Group {
                    format: Format::Cloudtrail,
                    paths: vec![p("a.json"), p("b.json")]
                },
            ]
        );
    }
}
