//! The local stack of docker-compose.yml, checked without a Docker engine: the compose
//! file validates (Debian's `docker-compose config`), the Prometheus config passes
//! `promtool check config`, the Kafka image is the official one at a pinned version,
//! and every file the stack mounts exists.

use std::path::Path;
use std::process::Command;

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{program} {args:?}: {text}");
    text
}

#[test]
fn compose_file_validates_offline() {
    run(
        "docker-compose",
        &["-f", "docker-compose.yml", "config", "-q"],
    );
}

#[test]
fn prometheus_config_passes_promtool() {
    let text = run("promtool", &["check", "config", "deploy/prometheus.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn stack_uses_pinned_official_kafka_and_mounts_existing_files() {
    let compose = std::fs::read_to_string("docker-compose.yml").expect("docker-compose.yml");
    let kafka_images: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .filter(|i| i.contains("kafka"))
        .collect();
    assert!(!kafka_images.is_empty());
    for image in kafka_images {
        let (name, tag) = image.split_once(':').expect("tagged image");
        assert_eq!(name, "apache/kafka", "the official image");
        assert!(
            tag.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "pinned: {tag}"
        );
    }
    for line in compose.lines() {
        let line = line.trim().trim_start_matches("- ");
        if let Some(rest) = line.strip_prefix("./") {
            let host = rest.split(':').next().unwrap_or_default();
            assert!(Path::new(host).exists(), "mounted path {host} exists");
        }
    }
    assert!(Path::new("Dockerfile").exists());
    assert!(
        compose.contains("service_completed_successfully"),
        "nhi-drift waits for the topics"
    );
}
