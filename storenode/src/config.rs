//! Storage node configuration: defaults in code, then a YAML file, then
//! `STORE_*` environment variables, then flags, then
//! [`StoreConfig::validate`]. Unknown fields are errors naming the field.
//! See `deploy/storenode.yaml` for a commented sample.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pd::byte_size::ByteSize;
use pd::config::{ConfigError, LogConfig, check_log, check_raft_timing, parse_yaml, read_yaml};
use serde::{Deserialize, Serialize};

use crate::engine::log_engine::RecoveryMode;

/// Largest key accepted: keys live in every index and raft message, keep
/// them small.
pub const MAX_KEY_SIZE: usize = 4 * 1024;
/// Largest value accepted: one raft entry carries it whole.
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;
/// Most keys in one batch request.
pub const MAX_BATCH_KEYS: usize = 10_000;
/// Most bytes (keys + values) in one batch put.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Scan page size when the request names none, and the most it may name.
pub const DEFAULT_SCAN_LIMIT: usize = 1_000;
pub const MAX_SCAN_LIMIT: usize = 10_000;

/// Smallest nonzero `capacity`: a store below it could not hold one
/// region's raft log and data, so the number would be a typo (`10` for
/// `10GiB`).
pub const MIN_CAPACITY: u64 = 1 << 20;

/// Region raft timing. Idle regions hibernate and cost nothing, so the
/// regions with traffic can afford etcd's pace. A follower campaigns once
/// its leader has been silent for its lease (the max) plus a random
/// timeout in [min, max): 1.5 to 2 s here, so a dead leader is replaced
/// within about 2 s and a leader's heartbeats may stall for 1.5 s before
/// anyone campaigns.
pub const DEFAULT_RAFT_HEARTBEAT_MS: u64 = 100;
pub const DEFAULT_ELECTION_TIMEOUT_MIN_MS: u64 = 500;
pub const DEFAULT_ELECTION_TIMEOUT_MAX_MS: u64 = 1_000;
/// A region with no requests for this long stops its raft timers.
pub const DEFAULT_HIBERNATE_AFTER_MS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct StoreConfig {
    /// The store's engine: raftlog/ (raft logs of every region) and
    /// store.redb (data).
    pub data_dir: PathBuf,
    /// gRPC listen address: the KV API and raft traffic from other stores.
    pub grpc_addr: String,
    pub advertise_grpc_addr: String,
    /// HTTP listen address: KV over HTTP, health, metrics, status.
    pub http_addr: String,
    pub advertise_http_addr: String,
    /// PD gRPC endpoints (any members).
    pub pd_endpoints: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The size this store reports to PD instead of its disk's (`10GiB`);
    /// 0 reports the file system holding `data-dir`. For stores that share
    /// a disk, as TiKV's `raftstore.capacity`.
    pub capacity: ByteSize,
    pub raft: RegionRaftConfig,
    pub heartbeat: HeartbeatConfig,
    pub engine: EngineConfig,
    pub snapshot: SnapshotConfig,
    pub log: LogConfig,
    /// Tests only: serve `/debug/partition`, which cuts this store off from
    /// other stores and PD ([`crate::fault`]).
    pub fault_injection: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RegionRaftConfig {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Applied entries between region snapshots (and log truncation).
    pub snapshot_logs: u64,
    /// A region that sees no request for this long hibernates: its raft
    /// timers stop until traffic wakes it ([`crate::node::hibernation`]).
    /// 0 keeps every region ticking.
    pub hibernate_after_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HeartbeatConfig {
    /// Store stats to PD.
    pub store_interval_ms: u64,
    /// Each led region's meta and size to PD (also sent at once after a
    /// leadership or membership change).
    pub region_interval_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct EngineConfig {
    /// The engine's page cache: most of a store's memory once data is
    /// written or read.
    pub cache_size_mb: u64,
    /// What opening the raft log does with a tail a crash may have torn:
    /// drop it (the default) or refuse to start. Damage refuses either way.
    pub recovery_mode: RecoveryMode,
}

/// Limits on region snapshots, which move whole regions between stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SnapshotConfig {
    /// Bytes per second all of this store's outgoing snapshots share, in
    /// MiB; 0 for no limit.
    pub max_send_rate_mb: u64,
    /// Snapshots this store sends at once; more wait their turn.
    pub max_concurrent_sends: usize,
    /// Snapshots this store receives at once; more are refused and their
    /// leaders retry.
    pub max_concurrent_receives: usize,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig { max_send_rate_mb: 100, max_concurrent_sends: 4, max_concurrent_receives: 4 }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_size_mb: (crate::engine::DEFAULT_CACHE_BYTES / (1024 * 1024)) as u64,
            recovery_mode: RecoveryMode::default(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("data/store"),
            grpc_addr: "127.0.0.1:20160".into(),
            advertise_grpc_addr: String::new(),
            http_addr: "127.0.0.1:20180".into(),
            advertise_http_addr: String::new(),
            pd_endpoints: vec!["127.0.0.1:2379".into()],
            labels: Default::default(),
            capacity: ByteSize(0),
            raft: RegionRaftConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            engine: EngineConfig::default(),
            snapshot: SnapshotConfig::default(),
            log: LogConfig::default(),
            fault_injection: false,
        }
    }
}

impl Default for RegionRaftConfig {
    fn default() -> Self {
        RegionRaftConfig {
            heartbeat_interval_ms: DEFAULT_RAFT_HEARTBEAT_MS,
            election_timeout_min_ms: DEFAULT_ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max_ms: DEFAULT_ELECTION_TIMEOUT_MAX_MS,
            snapshot_logs: 10_000,
            hibernate_after_ms: DEFAULT_HIBERNATE_AFTER_MS,
        }
    }
}

impl RegionRaftConfig {
    /// Sets the heartbeat with election timeouts in proportion, as the
    /// defaults are: 5 to 10 heartbeats.
    pub fn set_heartbeat(&mut self, ms: u64) {
        self.heartbeat_interval_ms = ms;
        self.election_timeout_min_ms = 5 * ms;
        self.election_timeout_max_ms = 10 * ms;
    }
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig { store_interval_ms: 10_000, region_interval_ms: 30_000 }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, reason: reason.into() }
}

impl StoreConfig {
    /// # Errors
    ///
    /// `Parse` for syntax errors, unknown fields and wrong types.
    pub fn from_yaml(text: &str, path: &str) -> Result<Self, ConfigError> {
        parse_yaml(text, path)
    }

    /// # Errors
    ///
    /// `Read` when the file cannot be read, otherwise as [`Self::from_yaml`].
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        read_yaml(path)
    }

    /// Applies `STORE_*` overrides.
    ///
    /// # Errors
    ///
    /// `Invalid` naming the variable when a number does not parse.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = lookup("STORE_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = lookup("STORE_GRPC_ADDR") {
            self.grpc_addr = v;
        }
        if let Some(v) = lookup("STORE_ADVERTISE_GRPC_ADDR") {
            self.advertise_grpc_addr = v;
        }
        if let Some(v) = lookup("STORE_HTTP_ADDR") {
            self.http_addr = v;
        }
        if let Some(v) = lookup("STORE_ADVERTISE_HTTP_ADDR") {
            self.advertise_http_addr = v;
        }
        if let Some(v) = lookup("STORE_PD_ENDPOINTS") {
            self.pd_endpoints = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        }
        if let Some(v) = lookup("STORE_LOG_LEVEL") {
            self.log.level = v;
        }
        if let Some(v) = lookup("STORE_CAPACITY") {
            self.capacity = v.parse().map_err(|e| invalid("STORE_CAPACITY", e))?;
        }
        if let Some(v) = lookup("STORE_RAFT_HEARTBEAT_MS") {
            let ms: u64 = v
                .trim()
                .parse()
                .map_err(|e| invalid("STORE_RAFT_HEARTBEAT_MS", format!("{v:?}: {e} (milliseconds)")))?;
            self.raft.set_heartbeat(ms);
        }
        if let Some(v) = lookup("STORE_ENGINE_RECOVERY_MODE") {
            self.engine.recovery_mode = v.parse().map_err(|e| invalid("STORE_ENGINE_RECOVERY_MODE", e))?;
        }
        if let Some(v) = lookup("STORE_RAFT_HIBERNATE_AFTER_MS") {
            self.raft.hibernate_after_ms = v.trim().parse().map_err(|e| {
                invalid("STORE_RAFT_HIBERNATE_AFTER_MS", format!("{v:?}: {e} (milliseconds, 0 for never)"))
            })?;
        }
        Ok(())
    }

    /// # Errors
    ///
    /// `Invalid` naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data-dir", "must not be empty"));
        }
        self.grpc_addr.parse::<SocketAddr>().map_err(|e| invalid("grpc-addr", format!("{:?}: {e}", self.grpc_addr)))?;
        self.http_addr.parse::<SocketAddr>().map_err(|e| invalid("http-addr", format!("{:?}: {e}", self.http_addr)))?;
        for (field, addr) in
            [("advertise-grpc-addr", &self.advertise_grpc_addr), ("advertise-http-addr", &self.advertise_http_addr)]
        {
            if !addr.is_empty() {
                pd::catalog::validate_address(field, addr).map_err(|e| invalid(field, e.to_string()))?;
            }
        }
        if self.pd_endpoints.is_empty() {
            return Err(invalid("pd-endpoints", "name at least one PD member"));
        }
        for ep in &self.pd_endpoints {
            pd::catalog::validate_address("pd-endpoints", ep.trim_start_matches("http://"))
                .map_err(|e| invalid("pd-endpoints", e.to_string()))?;
        }
        if self.capacity.bytes() != 0 && self.capacity.bytes() < MIN_CAPACITY {
            return Err(invalid(
                "capacity",
                format!("{} is below {} (0: the whole disk)", self.capacity, ByteSize(MIN_CAPACITY)),
            ));
        }
        let r = &self.raft;
        check_raft_timing(
            r.heartbeat_interval_ms,
            r.election_timeout_min_ms,
            r.election_timeout_max_ms,
            r.snapshot_logs,
        )?;
        if r.hibernate_after_ms != 0 && r.hibernate_after_ms < r.heartbeat_interval_ms {
            return Err(invalid("raft.hibernate-after-ms", "must be 0 (off) or at least raft.heartbeat-interval-ms"));
        }
        if self.heartbeat.store_interval_ms == 0 {
            return Err(invalid("heartbeat.store-interval-ms", "must be positive"));
        }
        if self.heartbeat.region_interval_ms == 0 {
            return Err(invalid("heartbeat.region-interval-ms", "must be positive"));
        }
        if self.engine.cache_size_mb == 0 {
            return Err(invalid("engine.cache-size-mb", "must be positive"));
        }
        if self.snapshot.max_concurrent_sends == 0 {
            return Err(invalid("snapshot.max-concurrent-sends", "must be positive"));
        }
        if self.snapshot.max_concurrent_receives == 0 {
            return Err(invalid("snapshot.max-concurrent-receives", "must be positive"));
        }
        if self.snapshot.max_send_rate_mb > 1 << 20 {
            return Err(invalid("snapshot.max-send-rate-mb", "must be at most 1048576 (0: no limit)"));
        }
        check_log(&self.log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_sample_are_valid() {
        StoreConfig::default().validate().unwrap();
        let c = StoreConfig::from_yaml(include_str!("../../deploy/storenode.yaml"), "deploy/storenode.yaml").unwrap();
        c.validate().unwrap();
        assert_eq!(c, StoreConfig::default());
    }

    #[test]
    fn unknown_and_invalid_fields_are_named() {
        let err = StoreConfig::from_yaml("pd-endpoint: [a]\n", "t").unwrap_err();
        assert!(err.to_string().contains("pd-endpoint"), "{err}");
        let err = StoreConfig::from_yaml("pd-endpoints: []\n", "t").unwrap().validate().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "pd-endpoints", .. }), "{err}");
        let err = StoreConfig::from_yaml("raft: {heartbeat-interval-ms: 0}\n", "t").unwrap().validate().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "raft.heartbeat-interval-ms", .. }), "{err}");
    }

    #[test]
    fn recovery_mode_is_typed_in_yaml_and_env() {
        let c = StoreConfig::from_yaml("engine: {recovery-mode: absolute-consistency}\n", "t").unwrap();
        assert_eq!(c.engine.recovery_mode, RecoveryMode::AbsoluteConsistency);
        let err = StoreConfig::from_yaml("engine: {recovery-mode: tolerate-any}\n", "t").unwrap_err();
        assert!(err.to_string().contains("tolerate-any"), "{err}");
        let mut c = StoreConfig::default();
        c.apply_env(|k| (k == "STORE_ENGINE_RECOVERY_MODE").then(|| "absolute-consistency".into())).unwrap();
        assert_eq!(c.engine.recovery_mode, RecoveryMode::AbsoluteConsistency);
        let err = StoreConfig::default().apply_env(|k| (k == "STORE_ENGINE_RECOVERY_MODE").then(|| "strict".into()));
        assert!(matches!(err, Err(ConfigError::Invalid { field: "STORE_ENGINE_RECOVERY_MODE", .. })), "{err:?}");
    }

    #[test]
    fn capacity_takes_sizes_in_yaml_env_and_refuses_typos() {
        let c = StoreConfig::from_yaml("capacity: 10GiB\n", "t.yaml").unwrap();
        assert_eq!(c.capacity.bytes(), 10 << 30);
        let mut c = StoreConfig::default();
        c.apply_env(|k| (k == "STORE_CAPACITY").then(|| "512MiB".into())).unwrap();
        assert_eq!(c.capacity.bytes(), 512 << 20);
        c.validate().unwrap();
        let err = StoreConfig::default().apply_env(|k| (k == "STORE_CAPACITY").then(|| "ten".into()));
        assert!(err.unwrap_err().to_string().contains("STORE_CAPACITY"));
        c.capacity = ByteSize(10);
        assert!(c.validate().unwrap_err().to_string().contains("capacity"));
    }

    #[test]
    fn raft_env_sets_heartbeat_with_elections_in_proportion() {
        let env = |k: &str| match k {
            "STORE_RAFT_HEARTBEAT_MS" => Some("1000".to_string()),
            "STORE_RAFT_HIBERNATE_AFTER_MS" => Some("0".to_string()),
            _ => None,
        };
        let mut c = StoreConfig::default();
        c.apply_env(env).unwrap();
        assert_eq!(
            (c.raft.heartbeat_interval_ms, c.raft.election_timeout_min_ms, c.raft.election_timeout_max_ms),
            (1000, 5000, 10000)
        );
        assert_eq!(c.raft.hibernate_after_ms, 0);
        c.validate().unwrap();
        let err = StoreConfig::default().apply_env(|k| (k == "STORE_RAFT_HEARTBEAT_MS").then(|| "fast".into()));
        assert!(matches!(err, Err(ConfigError::Invalid { field: "STORE_RAFT_HEARTBEAT_MS", .. })), "{err:?}");
    }
}
