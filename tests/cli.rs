//! The command line: rule listing and checking, and a broken rule named by its file.

use std::process::Command;

fn nhi_drift(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nhi-drift"))
        .args(args)
        .output()
        .expect("run nhi-drift")
}

#[test]
fn rules_list_shows_all_contract_rules() {
    let out = nhi_drift(&["rules", "list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for id in [
        "NHI-ROT-001",
        "NHI-ROT-002",
        "NHI-JIT-001",
        "NHI-STALE-001",
        "NHI-STALE-002",
        "NHI-SCOPE-001",
        "NHI-SCOPE-002",
        "NHI-SCOPE-003",
        "NHI-ORPH-001",
        "NHI-ORPH-002",
        "NHI-OFF-001",
        "NHI-OFF-002",
        "NHI-GOV-001",
        "NHI-GOV-002",
        "NHI-GOV-003",
        "NHI-PRIV-001",
        "NHI-SHARE-001",
        "NHI-ENV-001",
    ] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
}

#[test]
fn rules_check_passes_on_the_shipped_rules() {
    let out = nhi_drift(&["rules", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("18 rules"));
}

#[test]
fn rules_check_names_the_broken_file() {
    let dir = std::env::temp_dir().join(format!("nhi-drift-rules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    for entry in std::fs::read_dir("queries").expect("queries") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    let broken = dir.join("dormant_credential.sql");
    let text = std::fs::read_to_string(&broken).expect("read");
    std::fs::write(
        &broken,
        text.replace("FROM credentials", "FROM credentialz"),
    )
    .expect("write");
    let out = nhi_drift(&["--rules", dir.to_str().expect("path"), "rules", "check"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dormant_credential.sql"), "{stderr}");
    assert!(
        stderr.contains("credentialz"),
        "names the unknown table: {stderr}"
    );

    std::fs::write(&broken, text.replace("AS opened_at", "AS opened")).expect("write");
    let out = nhi_drift(&["--rules", dir.to_str().expect("path"), "rules", "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("dormant_credential.sql")
            && stderr.contains("opened_at"),
        "{stderr}"
    );
}

#[test]
fn rules_test_runs_the_fixtures() {
    let out = nhi_drift(&["rules", "test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn replay_reads_directories_recursively_in_name_order() {
    let dir = std::env::temp_dir().join(format!("nhi-drift-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("b")).expect("tmp");
    let event = |id: &str, minute: u32| {
        format!(
            r#"{{"id":"{id}","type":"credential.used","time":"2026-01-01T10:{minute:02}:00Z","identity":"svc","credential":"k"}}"#
        )
    };
    std::fs::write(dir.join("a.jsonl"), event("e1", 1)).expect("write");
    std::fs::write(dir.join("b/c.jsonl"), event("e2", 2)).expect("write");
    std::fs::write(dir.join("notes.txt"), "not events").expect("write");
    let out = nhi_drift(&["replay", dir.to_str().expect("path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("replayed 2 file(s): 2 records"), "{stderr}");
    assert!(stderr.contains("accepted 2"), "{stderr}");
}
