//! A whole cluster on loopback: PD members and storage nodes as child
//! processes, with a client library connected to it.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

use storenode::client::Client;

use crate::pd_cluster::{PdProcess, TEST_LOG, start_members, wait_leader};
use crate::process::Process;
use crate::wait_for;

/// Region raft heartbeat in tests: elections after 5-10 heartbeats, so a
/// killed leader is replaced within about a second.
pub const TEST_RAFT_HEARTBEAT_MS: &str = "100";
/// How often a region's leader reports it to PD in tests.
pub const TEST_REGION_HEARTBEAT_MS: u64 = 1_000;
/// How long the cluster may take to serve a first write after starting.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);

pub struct StoreProcess {
    pub store_id: u64,
    process: Process,
}

impl Deref for StoreProcess {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for StoreProcess {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl StoreProcess {
    /// Starts a storage node registered with `pd` and waits until it is
    /// ready (registered and serving).
    pub fn spawn(name: &str, data_dir: PathBuf, pd: &[String], extra_args: &[&str]) -> StoreProcess {
        Self::spawn_env(name, data_dir, pd, extra_args, &[])
    }

    /// As [`StoreProcess::spawn`], with extra environment variables (test
    /// failpoints).
    pub fn spawn_env(
        name: &str,
        data_dir: PathBuf,
        pd: &[String],
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> StoreProcess {
        let mut args = vec![
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--http-addr".into(),
            "127.0.0.1:0".into(),
            "--pd".into(),
            pd.join(","),
            "--raft-heartbeat-ms".into(),
            TEST_RAFT_HEARTBEAT_MS.into(),
            "--region-heartbeat-ms".into(),
            TEST_REGION_HEARTBEAT_MS.to_string(),
            // Tests declare stores Down after a few seconds of silence.
            "--store-heartbeat-ms".into(),
            "500".into(),
        ];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        Self::spawn_with(name, data_dir, args, env)
    }

    /// A store with production raft timing on fixed addresses (the
    /// playground; `127.0.0.1:0` for OS-chosen ports), with `extra_args`.
    pub fn spawn_at(
        name: &str,
        data_dir: PathBuf,
        pd: &[String],
        grpc: &str,
        http: &str,
        extra_args: &[&str],
    ) -> StoreProcess {
        let mut args = vec![
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--grpc-addr".into(),
            grpc.into(),
            "--http-addr".into(),
            http.into(),
            "--pd".into(),
            pd.join(","),
        ];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        Self::spawn_with(name, data_dir, args, &[])
    }

    fn spawn_with(name: &str, data_dir: PathBuf, args: Vec<String>, extra_env: &[(&str, &str)]) -> StoreProcess {
        let mut env = vec![("STORE_LOG_LEVEL".to_string(), TEST_LOG.to_string())];
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let process = Process::spawn(name, "storenode", args, env, data_dir.with_extension("log"));
        let store_id = process.field("store").parse().expect("store id in ready line");
        StoreProcess { store_id, process }
    }
}

pub struct Cluster {
    pub pd: Vec<PdProcess>,
    pub stores: Vec<StoreProcess>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `pd_members` PD members and `stores` storage nodes and waits
    /// until a write succeeds.
    pub async fn start(pd_members: u64, stores: usize, pd_args: &[&str]) -> Cluster {
        Self::start_with(pd_members, stores, pd_args, &[]).await
    }

    /// As [`Cluster::start`], with extra flags for every store.
    pub async fn start_with(pd_members: u64, stores: usize, pd_args: &[&str], store_args: &[&str]) -> Cluster {
        Self::start_with_env(pd_members, stores, pd_args, store_args, |_| Vec::new()).await
    }

    /// As [`Cluster::start_with`], with extra environment variables for
    /// store `i` (from 1) from `store_env(i)`.
    pub async fn start_with_env(
        pd_members: u64,
        stores: usize,
        pd_args: &[&str],
        store_args: &[&str],
        store_env: impl Fn(usize) -> Vec<(String, String)>,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let pd = start_members(dir.path(), pd_members, pd_args);
        let endpoints: Vec<String> = pd.iter().map(|m| m.grpc()).collect();
        wait_leader(&endpoints, pd_members as usize).await;
        let stores = (1..=stores)
            .map(|i| {
                let env = store_env(i);
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                StoreProcess::spawn_env(&format!("store{i}"), store_dir(dir.path(), i), &endpoints, store_args, &env)
            })
            .collect();
        let cluster = Cluster { pd, stores, dir };
        cluster.wait_serving().await;
        cluster
    }

    pub fn pd_endpoints(&self) -> Vec<String> {
        self.pd.iter().filter(|m| m.is_running()).map(|m| m.grpc()).collect()
    }

    /// A client library instance connected to this cluster.
    pub async fn client(&self) -> Client {
        Client::connect(&self.pd_endpoints()).await.expect("client connects")
    }

    pub fn store(&mut self, store_id: u64) -> &mut StoreProcess {
        self.stores.iter_mut().find(|s| s.store_id == store_id).expect("store id")
    }

    /// Waits until every region accepts a write (a probe key per region).
    pub async fn wait_serving(&self) {
        let client = self.client().await;
        let pd = pd::client::PdClient::new(&self.pd_endpoints()).expect("pd client");
        wait_for("every region to serve writes", READY_DEADLINE, || async {
            let routes = pd.list_routes().await.ok().filter(|r| !r.regions.is_empty())?;
            for r in &routes.regions {
                let region = r.region.as_ref()?;
                let mut probe = region.start_key.clone();
                probe.extend_from_slice(b"\x00probe");
                client.put(&probe, b"1").await.ok()?;
                client.delete(&probe).await.ok()?;
            }
            Some(())
        })
        .await;
    }
}

pub fn store_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("store{i}"))
}
