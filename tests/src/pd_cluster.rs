//! PD members as child processes.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

use pd::client::PdClient;

use crate::process::Process;
use crate::wait_for;

/// How long a PD group may take to elect a leader after a start or a kill:
/// several election timeouts, so a split vote or two cannot fail a test.
pub const ELECTION_DEADLINE: Duration = Duration::from_secs(20);

/// Log filter for test processes: our own info lines, openraft's warnings.
pub const TEST_LOG: &str = "info,openraft=warn";

pub struct PdProcess {
    pub id: u64,
    process: Process,
}

impl Deref for PdProcess {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for PdProcess {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl PdProcess {
    /// Starts `pd-server` member `id` and waits for it to be ready. `grpc`
    /// and `http` may be `127.0.0.1:0` for OS-chosen ports.
    pub fn spawn(id: u64, data_dir: PathBuf, grpc: &str, http: &str, extra_args: Vec<String>) -> PdProcess {
        let mut args = vec![
            "--node-id".to_string(),
            id.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--grpc-addr".into(),
            grpc.into(),
            "--http-addr".into(),
            http.into(),
        ];
        args.extend(extra_args);
        let log = data_dir.with_extension("log");
        let env = vec![("PD_LOG_LEVEL".to_string(), TEST_LOG.to_string())];
        PdProcess { id, process: Process::spawn(&format!("pd{id}"), "pd-server", args, env, log) }
    }

    pub fn client(&self) -> PdClient {
        PdClient::new(&[self.grpc()]).expect("client").with_deadline(Duration::from_secs(3))
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
        let members = start_members(dir.path(), n, extra_args);
        let cluster = PdCluster { members, dir };
        cluster.wait_members(n as usize).await;
        cluster
    }

    /// Every running member's gRPC address.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().filter(|m| m.is_running()).map(|m| m.grpc()).collect()
    }

    pub fn client(&self) -> PdClient {
        PdClient::new(&self.endpoints()).expect("client")
    }

    pub fn member(&mut self, id: u64) -> &mut PdProcess {
        self.members.iter_mut().find(|m| m.id == id).expect("member id")
    }

    /// Waits until a running member leads a group of `n` voters, as seen
    /// by every running member; returns the leader's id.
    pub async fn wait_members(&self, n: usize) -> u64 {
        wait_leader(&self.endpoints(), n).await
    }
}

/// Starts `n` PD members under `dir`: member 1 starts the group, the others
/// join it.
pub fn start_members(dir: &std::path::Path, n: u64, extra_args: &[&str]) -> Vec<PdProcess> {
    let mut members: Vec<PdProcess> = Vec::new();
    for id in 1..=n {
        let mut args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        if id > 1 {
            args.push("--join".into());
            args.push(members.iter().map(|m| m.grpc()).collect::<Vec<_>>().join(","));
        }
        members.push(PdProcess::spawn(id, dir.join(format!("pd{id}")), "127.0.0.1:0", "127.0.0.1:0", args));
    }
    members
}

/// Waits until every endpoint agrees on one leader among them, in a group
/// of `n` members.
pub async fn wait_leader(running: &[String], n: usize) -> u64 {
    let running = running.to_vec();
    wait_for("a PD leader seen by every running member", ELECTION_DEADLINE, || {
        let running = running.clone();
        async move {
            let mut leader: Option<(u64, String)> = None;
            for ep in &running {
                let c = PdClient::new(std::slice::from_ref(ep)).ok()?.with_deadline(Duration::from_secs(1));
                let m = c.get_members().await.ok()?;
                if m.members.len() != n {
                    return None;
                }
                let l = m.leader?;
                if leader.as_ref().is_some_and(|x| x.0 != l.id) {
                    return None;
                }
                leader = Some((l.id, l.address));
            }
            let l = leader?;
            running.contains(&l.1).then_some(l.0)
        }
    })
    .await
}
