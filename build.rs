//! Bundles `queries/*.sql` into the binary so it runs without the source tree.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new("queries");
    println!("cargo:rerun-if-changed=queries");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from("&[\n");
    // Paths relative to the manifest directory as the crate is compiled, so a target
    // directory shared between checkouts never points at another checkout's files.
    for name in &names {
        writeln!(
            out,
            "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/queries/{name}\"))),"
        )
        .expect("write to string");
    }
    out.push(']');
    let target = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR set by cargo"))
        .join("bundled_rules.rs");
    std::fs::write(target, out).expect("write bundled rules");
}
