//! `storenode` refuses a bad config file before touching anything, naming
//! the offending field, and exits with status 2.

use std::process::Command;

fn run_with_config(yaml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_storenode"))
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run storenode");
    assert!(!dir.path().join("data").exists(), "a refused config must not create data");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn unknown_field_is_named() {
    let (code, err) = run_with_config("pd-endpoint: [\"127.0.0.1:2379\"]\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("pd-endpoint"), "{err}");
}

#[test]
fn invalid_value_is_named() {
    let (code, err) = run_with_config("raft:\n  election-timeout-min-ms: 10\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("raft.election-timeout-min-ms"), "{err}");
}
