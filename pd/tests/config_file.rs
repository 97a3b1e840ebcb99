//! `pd-server` refuses a bad config file before touching anything, naming
//! the offending field, and exits with status 2.

use std::process::Command;

fn run_with_config(yaml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pd.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_pd-server"))
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run pd-server");
    assert!(!dir.path().join("data").exists(), "a refused config must not create data");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn unknown_field_is_named() {
    let (code, err) = run_with_config("node-id: 1\nreplication:\n  max-replica: 3\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("max-replica"), "{err}");
}

#[test]
fn invalid_value_is_named() {
    let (code, err) = run_with_config("replication:\n  max-replicas: 0\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("replication.max-replicas"), "{err}");
}

#[test]
fn wrong_type_is_named() {
    let (code, err) = run_with_config("raft:\n  heartbeat-interval-ms: soon\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("heartbeat-interval-ms"), "{err}");
}

#[test]
fn missing_file_is_reported() {
    let out = Command::new(env!("CARGO_BIN_EXE_pd-server"))
        .args(["--config", "/nonexistent/pd.yaml"])
        .output()
        .expect("run pd-server");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pd.yaml"));
}
