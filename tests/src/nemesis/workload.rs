//! The register workload: a few keys, several clients, each running one
//! operation at a time, through the Rust client library or through the HTTP
//! API of a randomly chosen store.
//!
//! Reads, unique-valued writes, compare-and-swaps (client only) and deletes.
//! An outcome is `Ok` only when the caller saw success; a write that failed
//! in any way is `Unknown` (it may still have applied), except a request
//! that provably never left the worker (connection refused), which is
//! `Fail`; a failed read has no effect and is `Fail`.

use std::sync::Arc;
use std::time::Duration;

use storenode::client::Client;
use tokio::sync::watch;

use super::checker::{Op, Outcome};
use super::history::Recorder;
use crate::cluster::Cluster;
use crate::http_request;
use storenode::bench::rng::Rng;

/// Longer than the client's deadline and the HTTP API's retry window, so an
/// operation ends by its own error before this.
const OP_TIMEOUT: Duration = Duration::from_secs(20);
/// The client library's deadline per operation in these runs.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(10);

pub enum Via {
    Client(Arc<Client>),
    /// HTTP addresses of every store; each operation picks one.
    Http(Vec<String>),
}

pub struct Worker {
    pub id: usize,
    pub via: Via,
    pub keys: Vec<String>,
    pub rng: Rng,
    pub recorder: Arc<Recorder>,
    /// The nemesis holds the workload while this is true.
    pub pause: watch::Receiver<bool>,
}

impl Worker {
    /// `clients` workers through the client library, then `http` through
    /// the stores' HTTP API, each with a generator forked from `rng`.
    pub async fn start_all(
        cluster: &Cluster,
        rng: &mut Rng,
        keys: &[String],
        (clients, http): (usize, usize),
        recorder: &Arc<Recorder>,
        pause: &watch::Receiver<bool>,
    ) -> Vec<Worker> {
        let urls: Vec<String> = cluster.stores.iter().map(|s| s.http()).collect();
        let mut workers = Vec::new();
        for id in 0..clients + http {
            let via = if id < clients {
                Via::Client(Arc::new(cluster.client().await.with_deadline(CLIENT_DEADLINE)))
            } else {
                Via::Http(urls.clone())
            };
            let (keys, rng, recorder, pause) = (keys.to_vec(), rng.fork(), recorder.clone(), pause.clone());
            workers.push(Worker { id, via, keys, rng, recorder, pause });
        }
        workers
    }

    /// Runs operations until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Self {
        let mut n = 0u64;
        while !*stop.borrow_and_update() {
            if *self.pause.borrow() {
                tokio::select! {
                    _ = self.pause.wait_for(|p| !*p) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            n += 1;
            let key = self.rng.pick(&self.keys).clone();
            self.step(&key, n).await;
        }
        self
    }

    /// One linearizable read of every key, recorded: after the faults heal
    /// these pin down the final state.
    pub async fn read_all(&mut self) {
        for key in self.keys.clone() {
            self.read(&key).await;
        }
    }

    async fn step(&mut self, key: &str, n: u64) {
        let value = format!("w{}-{n}", self.id);
        let dice = self.rng.below(100);
        let cas = matches!(self.via, Via::Client(_));
        match dice {
            0..40 => self.read(key).await,
            40..75 => self.write(key, value).await,
            75..90 if cas => self.cas(key, value).await,
            _ => self.delete(key).await,
        }
    }

    async fn read(&mut self, key: &str) {
        let invoke = self.recorder.now();
        let res = match &self.via {
            Via::Client(c) => timed(async { c.get(key.as_bytes()).await.ok().map(|v| v.map(lossy)) }).await.flatten(),
            Via::Http(addrs) => {
                let addr = self.rng.pick(addrs).clone();
                timed(async {
                    match http_request(&addr, "GET", &format!("/kv/{key}"), b"").await {
                        Ok((200, body)) => Some(Some(body)),
                        Ok((404, _)) => Some(None),
                        _ => None,
                    }
                })
                .await
                .flatten()
            }
        };
        let (op, outcome) = match res {
            Some(value) => (Op::Read { value }, Outcome::Ok),
            None => (Op::Read { value: None }, Outcome::Fail),
        };
        self.recorder.record(self.id, key, op, invoke, outcome);
    }

    async fn write(&mut self, key: &str, value: String) {
        let invoke = self.recorder.now();
        let outcome = match &self.via {
            Via::Client(c) => match timed(c.put(key.as_bytes(), value.as_bytes())).await {
                Some(Ok(())) => Outcome::Ok,
                _ => Outcome::Unknown,
            },
            Via::Http(addrs) => {
                let addr = self.rng.pick(addrs).clone();
                http_outcome(timed(http_request(&addr, "PUT", &format!("/kv/{key}"), value.as_bytes())).await, 204).0
            }
        };
        self.recorder.record(self.id, key, Op::Write { value }, invoke, outcome);
    }

    async fn delete(&mut self, key: &str) {
        let invoke = self.recorder.now();
        let (outcome, existed) = match &self.via {
            Via::Client(c) => match timed(c.delete(key.as_bytes())).await {
                Some(Ok(existed)) => (Outcome::Ok, Some(existed)),
                _ => (Outcome::Unknown, None),
            },
            Via::Http(addrs) => {
                let addr = self.rng.pick(addrs).clone();
                let (outcome, body) =
                    http_outcome(timed(http_request(&addr, "DELETE", &format!("/kv/{key}"), b"")).await, 200);
                let existed =
                    body.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok()?["existed"].as_bool());
                match (outcome, existed) {
                    (Outcome::Ok, Some(e)) => (Outcome::Ok, Some(e)),
                    (Outcome::Fail, _) => (Outcome::Fail, None),
                    _ => (Outcome::Unknown, None),
                }
            }
        };
        self.recorder.record(self.id, key, Op::Delete { existed }, invoke, outcome);
    }

    /// Compare-and-swap from the value this worker last saw... any value:
    /// half the time expect absence, otherwise read first and expect that.
    async fn cas(&mut self, key: &str, value: String) {
        let Via::Client(c) = &self.via else { unreachable!("CAS only through the client") };
        let c = c.clone();
        let expected = if self.rng.below(2) == 0 {
            None
        } else {
            match timed(async { c.get(key.as_bytes()).await.ok() }).await.flatten() {
                Some(v) => v.map(lossy),
                None => return,
            }
        };
        let invoke = self.recorder.now();
        let res =
            timed(c.compare_and_swap(key.as_bytes(), expected.as_deref().map(str::as_bytes), value.as_bytes())).await;
        let (outcome, succeeded) = match res {
            Some(Ok((succeeded, _))) => (Outcome::Ok, Some(succeeded)),
            _ => (Outcome::Unknown, None),
        };
        self.recorder.record(self.id, key, Op::Cas { expected, value, succeeded }, invoke, outcome);
    }
}

fn lossy(v: Vec<u8>) -> String {
    String::from_utf8_lossy(&v).into_owned()
}

async fn timed<T>(f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(OP_TIMEOUT, f).await.ok()
}

/// An HTTP write's outcome: `ok_status` is success; a refused connection
/// never sent it; anything else may have applied.
fn http_outcome(res: Option<std::io::Result<(u16, String)>>, ok_status: u16) -> (Outcome, Option<String>) {
    match res {
        Some(Ok((status, body))) if status == ok_status => (Outcome::Ok, Some(body)),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => (Outcome::Fail, None),
        _ => (Outcome::Unknown, None),
    }
}
