//! The cluster harness shared by the tests in `tests/tests/`.
//!
//! It starts real `pd-server` processes on loopback (ports chosen by the OS,
//! data in temp dirs), waits for conditions with deadlines (never fixed
//! sleeps), and injects faults the way an operator meets them: `kill -9` of
//! a process, restart on the same data directory and address.
//!
//! Binaries are taken from the cargo target directory of the test
//! executable; `cargo test --workspace` builds them first.

pub mod cluster;
pub mod leaders;
pub mod moves;
pub mod nemesis;
pub mod pd_cluster;
pub mod pdctl_run;
pub mod playground_ports;
pub mod process;
pub mod split;
pub mod store_status;
pub mod test_store;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Prints a test phase with the time since the first phase, so a failing
/// test's output shows how far it got and where the time went.
pub fn phase(name: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(std::time::Instant::now).elapsed();
    eprintln!("=== [{:>6.1}s] {name}", t.as_secs_f64());
}

/// The path of a workspace binary next to the running test executable.
///
/// # Panics
///
/// When the binary has not been built.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // A binary sits beside another binary (target/<profile>/<name>) or one
    // level above a test executable (target/<profile>/deps/<test>).
    let here = exe.parent().expect("exe dir");
    let path = [here.join(name), here.parent().unwrap_or(here).join(name)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| here.join(name));
    assert!(
        path.exists(),
        "{} not built; run `cargo build --workspace --bins` (cargo test --workspace does)",
        path.display()
    );
    path
}

/// Runs `pdctl` with `args`: exit code, stdout, stderr.
///
/// # Panics
///
/// If pdctl cannot be started.
pub fn pdctl(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(binary("pdctl")).args(args).output().expect("run pdctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Starts `pdctl` with `args` in the background, for commands that wait
/// while the test plays the other side.
///
/// # Panics
///
/// If pdctl cannot be started.
pub fn pdctl_spawn(args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(binary("pdctl"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start pdctl")
}

/// Waits for a background pdctl: exit code, stdout, stderr.
///
/// # Panics
///
/// If it does not exit within `timeout`.
pub async fn pdctl_wait(child: tokio::process::Child, timeout: Duration) -> (i32, String, String) {
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("pdctl did not exit within {timeout:?}"))
        .expect("pdctl output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Polls `cond` until it returns `Some`, or panics after `timeout` naming
/// `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain HTTP/1.0 GET against `addr` (host:port): status code and body.
///
/// # Errors
///
/// Connection and I/O errors.
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, b"").await
}

/// A plain HTTP/1.0 request with a body: status code and response body.
///
/// # Errors
///
/// Connection and I/O errors.
pub async fn http_request(addr: &str, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A free loopback port, for programs that must be told their port (the
/// OS picks it; the listener is closed right away, so another process could
/// take it in between, which tests accept).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Whether a program is on the PATH.
pub fn have_program(name: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The value of an unlabelled or labelled sample in a Prometheus text
/// exposition, e.g. `pd_region_reports_refused_total{reason="stale"}`.
pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok()))
}
