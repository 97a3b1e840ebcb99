//! A server binary run as a child process: started, waited for until it
//! prints its ready line, killed with SIGKILL or stopped with SIGTERM, and
//! restarted on the same data directory and addresses.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::binary;

/// How long a process may take to print its ready line (a store waits for
/// PD to register it).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Process {
    pub name: String,
    binary: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// `key=value` words of the ready line (`grpc`, `http`, `store`, ...).
    fields: HashMap<String, String>,
}

impl Process {
    /// Starts `binary` with `args` and waits for its ready line: a line whose
    /// words after the first two are `key=value`.
    ///
    /// # Panics
    ///
    /// If the process exits or is not ready in time.
    pub fn spawn(
        name: &str,
        binary: &'static str,
        args: Vec<String>,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> Process {
        let mut p = Process { name: name.into(), binary, args, env, log, child: None, fields: HashMap::new() };
        p.start();
        p
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let mut child = Command::new(binary(self.binary))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let Ok(line) = rx.recv_timeout(READY_TIMEOUT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not become ready; log:\n{}", self.name, self.log_tail())
        };
        self.fields =
            line.split_whitespace().filter_map(|w| w.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
        // Restarts reuse the addresses bound now, so peers can find us.
        for (flag, field) in [("--grpc-addr", "grpc"), ("--http-addr", "http")] {
            if let (Some(i), Some(v)) = (self.args.iter().position(|a| a == flag), self.fields.get(field)) {
                self.args[i + 1] = v.clone();
            }
        }
        self.child = Some(child);
    }

    /// A field of the ready line.
    ///
    /// # Panics
    ///
    /// If the ready line had no such field.
    pub fn field(&self, name: &str) -> String {
        self.fields.get(name).cloned().unwrap_or_else(|| panic!("{} ready line has no {name}=", self.name))
    }

    pub fn grpc(&self) -> String {
        self.field("grpc")
    }

    pub fn http(&self) -> String {
        self.field("http")
    }

    /// `kill -9`: no graceful shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for a graceful exit (SIGKILL after `grace`).
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Starts again on the same data directory and addresses.
    ///
    /// # Panics
    ///
    /// If it is still running.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of running {}", self.name);
        self.start();
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the running process.
    ///
    /// # Panics
    ///
    /// If it is not running.
    pub fn signal(&self, signal: &str) {
        let c = self.child.as_ref().unwrap_or_else(|| panic!("signal to stopped {}", self.name));
        let ok = Command::new("kill").arg(format!("-{signal}")).arg(c.id().to_string()).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{signal} {}", self.name);
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The exit status, once the process has exited on its own (it is then
    /// no longer running); `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    /// Leaves `key` out of the environment of later restarts.
    pub fn remove_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
