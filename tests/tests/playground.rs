//! The playground on a port another program holds: one `error:` line
//! naming the port and the flag that moves it, exit status 1, no panic,
//! and nothing started (not even its data directory).

use std::net::TcpListener;
use std::process::Command;

use cluster_tests::{binary, phase};

/// Runs the playground with `args` and a fresh data directory: exit code,
/// stderr, and whether the data directory exists afterwards.
fn playground(args: &[&str]) -> (Option<i32>, String, bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let out =
        Command::new(binary("playground")).args(args).arg("--data-dir").arg(&data).output().expect("run playground");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), data.exists())
}

fn assert_one_error_line(code: Option<i32>, stderr: &str, want: &str) {
    assert_eq!(code, Some(1), "exit status; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr has a panic:\n{stderr}");
    assert_eq!(stderr.lines().collect::<Vec<_>>(), vec![want], "stderr:\n{stderr}");
}

#[test]
fn a_taken_port_is_one_line_naming_its_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();

    phase("the PD port is taken");
    let (code, stderr, started) = playground(&["--pd-port", &port]);
    assert_one_error_line(code, &stderr, &format!("error: port {port} is already in use (change it with --pd-port)"));
    assert!(!started, "the data directory was created before the ports were checked");

    phase("a store port is taken");
    // No PD members, so the store ports are the only ones checked and the
    // result does not depend on who holds the default PD port.
    let (code, stderr, started) = playground(&["--pd", "0", "--stores", "1", "--store-port", &port]);
    assert_one_error_line(
        code,
        &stderr,
        &format!("error: port {port} is already in use (change it with --store-port)"),
    );
    assert!(!started, "the data directory was created before the ports were checked");

    phase("a store range past the last port");
    let (code, stderr, started) = playground(&["--pd", "0", "--stores", "3", "--store-port", "65530"]);
    assert_eq!(code, Some(1), "stderr:\n{stderr}");
    assert!(stderr.starts_with("error: --store-port 65530 leaves no room for 3 stores"), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked") && !started, "stderr:\n{stderr}");
    drop(taken);
}
