//! PD members as child processes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pd::client::PdClient;

use crate::{binary, wait_for};

/// How long a process may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a PD group may take to elect a leader after a start or a kill:
/// several election timeouts, so a split vote or two cannot fail a test.
pub const ELECTION_DEADLINE: Duration = Duration::from_secs(20);

pub struct PdProcess {
    pub id: u64,
    pub data_dir: PathBuf,
    pub grpc: String,
    pub http: String,
    child: Option<Child>,
    log: PathBuf,
    extra_args: Vec<String>,
}

impl PdProcess {
    /// Starts `pd-server` and waits for its ready line. `grpc`/`http` may be
    /// `127.0.0.1:0` for OS-chosen ports.
    ///
    /// # Panics
    ///
    /// If the process exits or does not become ready in time.
    pub fn spawn(
        id: u64,
        data_dir: PathBuf,
        grpc: &str,
        http: &str,
        extra_args: Vec<String>,
    ) -> PdProcess {
        let mut p = PdProcess {
            id,
            log: data_dir.with_extension("log"),
            data_dir,
            grpc: grpc.into(),
            http: http.into(),
            child: None,
            extra_args,
        };
        p.start();
        p
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut child = Command::new(binary("pd-server"))
            .arg("--node-id")
            .arg(self.id.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--grpc-addr")
            .arg(&self.grpc)
            .arg("--http-addr")
            .arg(&self.http)
            .args(&self.extra_args)
            .env("PD_LOG_LEVEL", "info,openraft=warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn pd-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx.recv_timeout(READY_TIMEOUT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "pd-server {} did not become ready; log:\n{}",
                self.id,
                self.log_tail()
            )
        });
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("bad ready line {line:?}"))
                .to_string()
        };
        self.grpc = field("grpc");
        self.http = field("http");
        self.child = Some(child);
    }

    /// `kill -9`: no graceful shutdown, nothing flushed that was not already.
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
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
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

    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// Starts again on the same data directory and addresses.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running member");
        self.start();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn client(&self) -> PdClient {
        PdClient::new(std::slice::from_ref(&self.grpc))
            .expect("client")
            .with_deadline(Duration::from_secs(3))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for PdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PD group of `n` members: the first starts the group, the others join
/// it.
pub struct PdCluster {
    pub members: Vec<PdProcess>,
    pub dir: tempfile::TempDir,
}

impl PdCluster {
    /// # Panics
    ///
    /// If a member fails to start or the group does not form in time.
    pub async fn start(n: u64, extra_args: &[&str]) -> PdCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let extra: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let mut members = Vec::new();
        for id in 1..=n {
            let mut args = extra.clone();
            if id > 1 {
                args.push("--join".into());
                args.push(
                    members
                        .iter()
                        .map(|m: &PdProcess| m.grpc.clone())
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
            members.push(PdProcess::spawn(
                id,
                dir.path().join(format!("pd{id}")),
                "127.0.0.1:0",
                "127.0.0.1:0",
                args,
            ));
        }
        let cluster = PdCluster { members, dir };
        cluster.wait_members(n as usize).await;
        cluster
    }

    /// Every running member's gRPC address.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.is_running())
            .map(|m| m.grpc.clone())
            .collect()
    }

    pub fn client(&self) -> PdClient {
        PdClient::new(&self.endpoints()).expect("client")
    }

    pub fn member(&mut self, id: u64) -> &mut PdProcess {
        self.members
            .iter_mut()
            .find(|m| m.id == id)
            .expect("member id")
    }

    /// Waits until a running member leads a group of `n` voters, as seen
    /// by every running member; returns the leader's id.
    pub async fn wait_members(&self, n: usize) -> u64 {
        let running: Vec<String> = self.endpoints();
        wait_for(
            "a PD leader seen by every running member",
            ELECTION_DEADLINE,
            || {
                let running = running.clone();
                async move {
                    let mut leader = None;
                    for ep in &running {
                        let c = PdClient::new(std::slice::from_ref(ep))
                            .ok()?
                            .with_deadline(Duration::from_secs(1));
                        let m = c.get_members().await.ok()?;
                        if m.members.len() != n {
                            return None;
                        }
                        let l = m.leader?.id;
                        if leader.is_some_and(|x| x != l) {
                            return None;
                        }
                        leader = Some(l);
                    }
                    // The leader must be one of the running members.
                    let l = leader?;
                    let c = PdClient::new(&running)
                        .ok()?
                        .with_deadline(Duration::from_secs(1));
                    let m = c.get_members().await.ok()?;
                    let addr = m.members.iter().find(|x| x.id == l)?.address.clone();
                    running.contains(&addr).then_some(l)
                }
            },
        )
        .await
    }
}
