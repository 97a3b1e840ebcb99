//! What the server binaries (`pd-server`, `storenode`) share around their
//! `main`: the container health probe, the runtime, the ready line and
//! signal handling.

use std::io::Write;
use std::process::ExitCode;

/// With `--probe URL`: the exit code of probing it, and the binary does
/// nothing else.
pub fn probe_exit(url: Option<&str>) -> Option<ExitCode> {
    url.map(|u| if crate::net::probe(u) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A multi-threaded tokio runtime, or the exit code after saying why not.
///
/// # Errors
///
/// The exit code to return when the runtime cannot start.
pub fn runtime(name: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| {
        eprintln!("{name}: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

/// Prints the one machine-readable line on stdout that says the server is
/// serving (`<name> ready key=value ...`); logs go to stderr.
pub fn ready(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
