//! PD configuration: defaults in code, then a YAML file, then environment
//! variables, then command-line flags, then [`PdConfig::validate`].
//!
//! Unknown fields in the file are errors naming the field, so a typo never
//! silently falls back to a default. See `deploy/pd.yaml` for a commented
//! sample.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::byte_size::ByteSize;
use crate::duration_text::DurationText;

/// Raft heartbeat of the PD group: one group, so etcd's pace costs little.
pub const DEFAULT_RAFT_HEARTBEAT_MS: u64 = 100;
/// Election timeouts: a follower campaigns once the leader has been silent
/// for its lease (the max) plus a random timeout in [min, max), 1.5 to 2 s,
/// so several late heartbeats do not depose a healthy leader and a dead
/// one is replaced within about 2 s.
pub const DEFAULT_ELECTION_TIMEOUT_MIN_MS: u64 = 500;
pub const DEFAULT_ELECTION_TIMEOUT_MAX_MS: u64 = 1_000;
/// openraft logs every election and membership step at info: useful when
/// debugging raft, noise in operation.
pub const DEFAULT_LOG_LEVEL: &str = "info,openraft=warn";
/// Log entries between snapshots: the catalog snapshot is small, so keep
/// the log short and restarts quick.
pub const DEFAULT_SNAPSHOT_LOGS: u64 = 5_000;
/// How often the PD leader looks for regions to split. Region sizes arrive
/// with region heartbeats (every 10 s or so on a store), so checking more
/// often finds nothing new.
pub const DEFAULT_SPLIT_CHECK_INTERVAL_MS: u64 = 10_000;
/// TiKV's thresholds: a region splits at 96 MiB or 960k keys, and one past
/// 144 MiB or 1.44M keys (1.5x) is overdue and goes first.
pub const DEFAULT_REGION_SPLIT_SIZE: ByteSize = ByteSize::mib(96);
pub const DEFAULT_REGION_SPLIT_KEYS: u64 = 960_000;
pub const DEFAULT_REGION_MAX_SIZE: ByteSize = ByteSize::mib(144);
pub const DEFAULT_REGION_MAX_KEYS: u64 = 1_440_000;
/// A split is metadata only: one raft entry on the region and one catalog
/// write. A minute covers a leader election or two on the way.
pub const DEFAULT_SPLIT_OPERATOR_TIMEOUT_MS: u64 = 60_000;
/// A move is a leader transfer, a learner added, two membership changes
/// and a removal, each a raft entry and a report: two minutes covers a few
/// elections on the way, before the data itself.
pub const DEFAULT_PEER_OPERATOR_TIMEOUT_MS: u64 = 120_000;
/// A slow disk or a busy network still sends a snapshot this fast: a
/// 96 MiB region adds 12 s to the timeout.
pub const DEFAULT_PEER_OPERATOR_RATE: ByteSize = ByteSize::mib(8);
/// Splits the checker starts per check: enough to keep up with a bulk load,
/// few enough that a burst of reports cannot flood the stores with splits.
pub const DEFAULT_MAX_SPLITS_PER_CHECK: u32 = 4;
/// TiKV's PD default: a store silent this long is Down and its replicas
/// are re-created elsewhere. Long enough to ride out a restart or a short
/// network fault without moving data, short enough that a dead machine
/// does not leave regions one failure from unavailability for hours.
pub const DEFAULT_MAX_STORE_DOWN_TIME: DurationText = DurationText::minutes(30);
/// How often the leader runs the replica checkers (repair, decommission,
/// joint). Cheap: one pass over the catalog.
pub const DEFAULT_REPLICA_CHECK_INTERVAL_MS: u64 = 5_000;
/// Plans each replica checker makes per run: every plan becomes a move that
/// copies a whole region, so a dead store's regions are re-created a few at
/// a time rather than all at once.
pub const DEFAULT_MAX_REPLICA_PLANS_PER_CHECK: u32 = 4;

/// Catalog versions whose changes PD remembers for route deltas. A split
/// or leader change is one version, so a store that reconnects within a
/// thousand route changes gets only what it missed; one further behind
/// gets a full snapshot. Each version costs a few region ids.
pub const DEFAULT_ROUTE_HISTORY_VERSIONS: u64 = 1_024;
/// Far more than any store lags in practice; bounds the memory a typo can
/// ask for.
pub const MAX_ROUTE_HISTORY_VERSIONS: u64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct PdConfig {
    /// Raft member id of this PD, unique in the PD group, never reused.
    pub node_id: u64,
    /// Where the raft log and the catalog live.
    pub data_dir: PathBuf,
    /// gRPC listen address: the client API and PD-to-PD raft traffic.
    pub grpc_addr: String,
    /// The gRPC address other members and clients use; defaults to the
    /// bound listen address.
    pub advertise_grpc_addr: String,
    /// HTTP listen address: health, metrics and the JSON API.
    pub http_addr: String,
    pub advertise_http_addr: String,
    /// gRPC addresses of existing members to join. Empty: this member starts
    /// a new PD group on its own (or restarts one it belongs to).
    pub join: Vec<String>,
    pub replication: ReplicationConfig,
    pub bootstrap: BootstrapConfig,
    pub raft: RaftTiming,
    pub schedule: ScheduleConfig,
    pub routes: RoutesConfig,
    pub log: LogConfig,
}

/// How routes reach stores and watchers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RoutesConfig {
    /// Recent catalog versions whose changes are kept, so a receiver within
    /// that many versions gets a delta instead of a full snapshot. 0: full
    /// snapshots only.
    pub history_versions: u64,
}

impl Default for RoutesConfig {
    fn default() -> Self {
        RoutesConfig { history_versions: DEFAULT_ROUTE_HISTORY_VERSIONS }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ReplicationConfig {
    /// Replicas per region. PD bootstraps the first regions once this many
    /// stores have registered.
    pub max_replicas: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct BootstrapConfig {
    /// Pre-split the key space at these keys (UTF-8 strings), ascending.
    pub split_keys: Vec<String>,
    /// Or: cut the key space into this many even ranges of
    /// `key-prefix + 2 big-endian bytes`. Ignored when `split-keys` is set.
    pub regions: u32,
    pub key_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RaftTiming {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub snapshot_logs: u64,
}

/// Automatic split and operator timing, used by the PD leader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ScheduleConfig {
    /// How often the leader runs the split checker; 0 turns automatic
    /// splitting off (`pdctl region split` still works).
    pub split_check_interval_ms: u64,
    /// A region whose approximate size reaches this is split at its middle.
    pub region_split_size: ByteSize,
    /// Or whose approximate key count reaches this.
    pub region_split_keys: u64,
    /// Regions past these are overdue: the checker splits them first.
    pub region_max_size: ByteSize,
    pub region_max_keys: u64,
    /// Most split operators one check starts.
    pub max_splits_per_check: u32,
    /// A split operator not done by then ends as TIMED_OUT.
    pub split_operator_timeout_ms: u64,
    /// A membership operator (move, add-peer, remove-peer, leave-joint) may
    /// run this long, plus the time to send its region's data at
    /// `peer-operator-rate`, before it ends as TIMED_OUT.
    pub peer_operator_timeout_ms: u64,
    /// Bytes per second a new peer is assumed to receive its region's data
    /// at, at least; sizes the membership operators' timeouts.
    pub peer_operator_rate: ByteSize,
    /// A store that has not heartbeaten the leader for this long is Down:
    /// the replica checker moves its replicas to healthy stores.
    pub max_store_down_time: DurationText,
    /// How often the leader runs the replica checkers; 0 turns them off.
    pub replica_check_interval_ms: u64,
    /// Most plans each replica checker makes per run.
    pub max_replica_plans_per_check: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `pd=debug,openraft=warn`, ...
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for PdConfig {
    fn default() -> Self {
        PdConfig {
            node_id: 1,
            data_dir: PathBuf::from("data/pd"),
            grpc_addr: "127.0.0.1:2379".into(),
            advertise_grpc_addr: String::new(),
            http_addr: "127.0.0.1:2381".into(),
            advertise_http_addr: String::new(),
            join: Vec::new(),
            replication: ReplicationConfig::default(),
            bootstrap: BootstrapConfig::default(),
            raft: RaftTiming::default(),
            schedule: ScheduleConfig::default(),
            routes: RoutesConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            split_check_interval_ms: DEFAULT_SPLIT_CHECK_INTERVAL_MS,
            region_split_size: DEFAULT_REGION_SPLIT_SIZE,
            region_split_keys: DEFAULT_REGION_SPLIT_KEYS,
            region_max_size: DEFAULT_REGION_MAX_SIZE,
            region_max_keys: DEFAULT_REGION_MAX_KEYS,
            max_splits_per_check: DEFAULT_MAX_SPLITS_PER_CHECK,
            split_operator_timeout_ms: DEFAULT_SPLIT_OPERATOR_TIMEOUT_MS,
            peer_operator_timeout_ms: DEFAULT_PEER_OPERATOR_TIMEOUT_MS,
            peer_operator_rate: DEFAULT_PEER_OPERATOR_RATE,
            max_store_down_time: DEFAULT_MAX_STORE_DOWN_TIME,
            replica_check_interval_ms: DEFAULT_REPLICA_CHECK_INTERVAL_MS,
            max_replica_plans_per_check: DEFAULT_MAX_REPLICA_PLANS_PER_CHECK,
        }
    }
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig { max_replicas: 3 }
    }
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig { split_keys: Vec::new(), regions: 1, key_prefix: String::new() }
    }
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat_interval_ms: DEFAULT_RAFT_HEARTBEAT_MS,
            election_timeout_min_ms: DEFAULT_ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max_ms: DEFAULT_ELECTION_TIMEOUT_MAX_MS,
            snapshot_logs: DEFAULT_SNAPSHOT_LOGS,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: DEFAULT_LOG_LEVEL.into(), format: LogFormat::Text }
    }
}

/// A configuration problem, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    /// Syntax errors, unknown fields and wrong types; serde's message names
    /// the field and the line.
    #[error("invalid config file {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("invalid value for {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Parses a YAML document over `T`'s defaults; an empty document is all
/// defaults.
///
/// # Errors
///
/// `Parse` for syntax errors, unknown fields and wrong types.
pub fn parse_yaml<T: serde::de::DeserializeOwned + Default>(text: &str, path: &str) -> Result<T, ConfigError> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_yaml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), reason: e.to_string() })
}

/// # Errors
///
/// `Read` when the file cannot be read, otherwise as [`parse_yaml`].
pub fn read_yaml<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, ConfigError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: shown.clone(), reason: e.to_string() })?;
    parse_yaml(&text, &shown)
}

/// The raft timing rules PD and the stores share, naming the `raft.*` field
/// at fault: elections must wait out several heartbeats, and their window
/// must not be empty.
///
/// # Errors
///
/// `Invalid` naming the field.
pub fn check_raft_timing(
    heartbeat_ms: u64,
    election_min_ms: u64,
    election_max_ms: u64,
    snapshot_logs: u64,
) -> Result<(), ConfigError> {
    if heartbeat_ms == 0 {
        return Err(invalid("raft.heartbeat-interval-ms", "must be positive"));
    }
    if election_min_ms < 3 * heartbeat_ms {
        return Err(invalid("raft.election-timeout-min-ms", "must be at least 3 heartbeat intervals"));
    }
    if election_max_ms <= election_min_ms {
        return Err(invalid("raft.election-timeout-max-ms", "must be above election-timeout-min-ms"));
    }
    if snapshot_logs == 0 {
        return Err(invalid("raft.snapshot-logs", "must be positive"));
    }
    Ok(())
}

/// # Errors
///
/// `Invalid` naming the `schedule.*` field: thresholds must be positive and
/// the max ones not below the split ones, so the checker can tell overdue
/// regions from due ones.
pub fn check_schedule(s: &ScheduleConfig) -> Result<(), ConfigError> {
    if s.region_split_size.bytes() == 0 {
        return Err(invalid("schedule.region-split-size", "must be positive"));
    }
    if s.region_split_keys == 0 {
        return Err(invalid("schedule.region-split-keys", "must be positive"));
    }
    if s.region_max_size < s.region_split_size {
        return Err(invalid(
            "schedule.region-max-size",
            format!("{} is below region-split-size {}", s.region_max_size, s.region_split_size),
        ));
    }
    if s.region_max_keys < s.region_split_keys {
        return Err(invalid(
            "schedule.region-max-keys",
            format!("{} is below region-split-keys {}", s.region_max_keys, s.region_split_keys),
        ));
    }
    if s.max_splits_per_check == 0 {
        return Err(invalid("schedule.max-splits-per-check", "must be positive"));
    }
    if s.split_operator_timeout_ms == 0 {
        return Err(invalid("schedule.split-operator-timeout-ms", "must be positive"));
    }
    if s.peer_operator_timeout_ms == 0 {
        return Err(invalid("schedule.peer-operator-timeout-ms", "must be positive"));
    }
    if s.peer_operator_rate.bytes() == 0 {
        return Err(invalid("schedule.peer-operator-rate", "must be positive"));
    }
    if s.max_store_down_time.as_millis() < 1_000 {
        return Err(invalid(
            "schedule.max-store-down-time",
            format!("{} is below 1s: a store between two heartbeats would be Down", s.max_store_down_time),
        ));
    }
    if s.max_replica_plans_per_check == 0 {
        return Err(invalid("schedule.max-replica-plans-per-check", "must be positive"));
    }
    Ok(())
}

/// # Errors
///
/// `Invalid` naming `log.level` when it is not a tracing filter.
pub fn check_log(log: &LogConfig) -> Result<(), ConfigError> {
    if log.level.parse::<tracing_subscriber::EnvFilter>().is_err() {
        return Err(invalid("log.level", format!("{:?} is not a log filter", log.level)));
    }
    Ok(())
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, reason: reason.into() }
}

/// Environment variables read by [`PdConfig::apply_env`], named after the
/// fields they override.
pub const ENV_VARS: [&str; 7] =
    ["PD_NODE_ID", "PD_DATA_DIR", "PD_GRPC_ADDR", "PD_ADVERTISE_GRPC_ADDR", "PD_HTTP_ADDR", "PD_JOIN", "PD_LOG_LEVEL"];

impl PdConfig {
    /// Parses a YAML document over the defaults.
    ///
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

    /// Applies `PD_*` overrides from `lookup` (the process environment in
    /// production; a map in tests).
    ///
    /// # Errors
    ///
    /// `Invalid` naming the variable when its value does not parse.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = lookup("PD_NODE_ID") {
            self.node_id = v.parse().map_err(|_| invalid("PD_NODE_ID", format!("{v:?} is not a number")))?;
        }
        if let Some(v) = lookup("PD_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = lookup("PD_GRPC_ADDR") {
            self.grpc_addr = v;
        }
        if let Some(v) = lookup("PD_ADVERTISE_GRPC_ADDR") {
            self.advertise_grpc_addr = v;
        }
        if let Some(v) = lookup("PD_HTTP_ADDR") {
            self.http_addr = v;
        }
        if let Some(v) = lookup("PD_JOIN") {
            self.join = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        }
        if let Some(v) = lookup("PD_LOG_LEVEL") {
            self.log.level = v;
        }
        Ok(())
    }

    /// Checks every field; the first problem is returned naming its field.
    ///
    /// # Errors
    ///
    /// `Invalid` naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(invalid("node-id", "must be at least 1"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data-dir", "must not be empty"));
        }
        self.grpc_addr.parse::<SocketAddr>().map_err(|e| invalid("grpc-addr", format!("{:?}: {e}", self.grpc_addr)))?;
        self.http_addr.parse::<SocketAddr>().map_err(|e| invalid("http-addr", format!("{:?}: {e}", self.http_addr)))?;
        for (field, addr) in
            [("advertise-grpc-addr", &self.advertise_grpc_addr), ("advertise-http-addr", &self.advertise_http_addr)]
        {
            if !addr.is_empty() {
                crate::catalog::validate_address(field, addr).map_err(|e| invalid(field, e.to_string()))?;
            }
        }
        for addr in &self.join {
            crate::catalog::validate_address("join", addr).map_err(|e| invalid("join", e.to_string()))?;
        }
        if self.replication.max_replicas == 0 || self.replication.max_replicas > 7 {
            return Err(invalid(
                "replication.max-replicas",
                format!("{} is not in 1..=7", self.replication.max_replicas),
            ));
        }
        if self.bootstrap.regions == 0 || self.bootstrap.regions > 65_536 {
            return Err(invalid("bootstrap.regions", format!("{} is not in 1..=65536", self.bootstrap.regions)));
        }
        for (i, k) in self.bootstrap.split_keys.iter().enumerate() {
            if k.is_empty() {
                return Err(invalid("bootstrap.split-keys", "keys must not be empty"));
            }
            if i > 0 && self.bootstrap.split_keys[i - 1] >= *k {
                return Err(invalid("bootstrap.split-keys", format!("{k:?} is not above the key before it")));
            }
        }
        let r = &self.raft;
        check_raft_timing(
            r.heartbeat_interval_ms,
            r.election_timeout_min_ms,
            r.election_timeout_max_ms,
            r.snapshot_logs,
        )?;
        check_schedule(&self.schedule)?;
        if self.routes.history_versions > MAX_ROUTE_HISTORY_VERSIONS {
            return Err(invalid(
                "routes.history-versions",
                format!("{} is above {MAX_ROUTE_HISTORY_VERSIONS}", self.routes.history_versions),
            ));
        }
        check_log(&self.log)
    }

    /// The split keys the bootstrap uses.
    pub fn bootstrap_split_keys(&self) -> Vec<Vec<u8>> {
        if self.bootstrap.split_keys.is_empty() {
            crate::catalog::even_split_keys(self.bootstrap.key_prefix.as_bytes(), self.bootstrap.regions)
        } else {
            self.bootstrap.split_keys.iter().map(|k| k.as_bytes().to_vec()).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        PdConfig::default().validate().unwrap();
    }

    #[test]
    fn file_overrides_defaults_and_keeps_the_rest() {
        let c = PdConfig::from_yaml("node-id: 3\nreplication:\n  max-replicas: 1\n", "t.yaml").unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.replication.max_replicas, 1);
        assert_eq!(c.raft, RaftTiming::default());
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = PdConfig::from_yaml("node-id: 1\nmax-replica: 3\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("max-replica"), "{err}");
        let err = PdConfig::from_yaml("raft:\n  heartbeat-ms: 3\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("heartbeat-ms"), "{err}");
        let err = PdConfig::from_yaml("node-id: one\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("node-id"), "{err}");
    }

    #[test]
    fn invalid_values_are_named() {
        let cases: [(&str, &str); 15] = [
            ("node-id: 0", "node-id"),
            ("grpc-addr: nowhere", "grpc-addr"),
            ("replication: {max-replicas: 0}", "replication.max-replicas"),
            ("bootstrap: {split-keys: [b, a]}", "bootstrap.split-keys"),
            ("raft: {heartbeat-interval-ms: 500, election-timeout-min-ms: 600}", "raft.election-timeout-min-ms"),
            ("join: [\"nohost\"]", "join"),
            ("schedule: {region-split-size: 0}", "schedule.region-split-size"),
            ("schedule: {region-split-size: 200MiB}", "schedule.region-max-size"),
            ("schedule: {region-split-keys: 2000000}", "schedule.region-max-keys"),
            ("schedule: {split-operator-timeout-ms: 0}", "schedule.split-operator-timeout-ms"),
            ("schedule: {peer-operator-timeout-ms: 0}", "schedule.peer-operator-timeout-ms"),
            ("schedule: {peer-operator-rate: 0}", "schedule.peer-operator-rate"),
            ("schedule: {max-store-down-time: 500ms}", "schedule.max-store-down-time"),
            ("schedule: {max-replica-plans-per-check: 0}", "schedule.max-replica-plans-per-check"),
            ("routes: {history-versions: 2000000}", "routes.history-versions"),
        ];
        for (yaml, field) in cases {
            let err = PdConfig::from_yaml(yaml, "t.yaml").unwrap().validate().unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { field: f, .. } if f == field), "{yaml}: {err}");
        }
    }

    #[test]
    fn max_store_down_time_takes_units_or_seconds() {
        assert_eq!(PdConfig::default().schedule.max_store_down_time.as_millis(), 30 * 60 * 1000);
        let c = PdConfig::from_yaml("schedule:\n  max-store-down-time: 1h30m\n", "t.yaml").unwrap();
        assert_eq!(c.schedule.max_store_down_time.as_millis(), 90 * 60 * 1000);
        let c = PdConfig::from_yaml("schedule:\n  max-store-down-time: 90\n", "t.yaml").unwrap();
        assert_eq!(c.schedule.max_store_down_time.as_millis(), 90 * 1000);
        let err = PdConfig::from_yaml("schedule:\n  max-store-down-time: soon\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("not a duration"), "{err}");
    }

    #[test]
    fn schedule_sizes_take_units_or_bytes() {
        let c = PdConfig::from_yaml(
            "schedule:\n  region-split-size: 4KiB\n  region-max-size: 8192\n  split-check-interval-ms: 0\n",
            "t.yaml",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.schedule.region_split_size, ByteSize(4096));
        assert_eq!(c.schedule.region_max_size, ByteSize(8192));
        assert_eq!(c.schedule.split_check_interval_ms, 0);
        let err = PdConfig::from_yaml("schedule:\n  region-split-size: huge\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("huge"), "{err}");
        let err = PdConfig::from_yaml("schedule:\n  region-split-size-mb: 96\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("region-split-size-mb"), "{err}");
    }

    #[test]
    fn env_overrides_file() {
        let mut c = PdConfig::from_yaml("node-id: 2", "t.yaml").unwrap();
        c.apply_env(|k| match k {
            "PD_NODE_ID" => Some("5".into()),
            "PD_JOIN" => Some("10.0.0.1:2379, 10.0.0.2:2379".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.node_id, 5);
        assert_eq!(c.join.len(), 2);
        let err = c.apply_env(|k| (k == "PD_NODE_ID").then(|| "x".into())).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "PD_NODE_ID", .. }));
    }

    #[test]
    fn bootstrap_keys_from_count_or_list() {
        let mut c = PdConfig::default();
        c.bootstrap.regions = 4;
        assert_eq!(c.bootstrap_split_keys().len(), 3);
        c.bootstrap.split_keys = vec!["m".into()];
        assert_eq!(c.bootstrap_split_keys(), vec![b"m".to_vec()]);
    }
}

#[cfg(test)]
mod sample_tests {
    use super::*;

    /// The commented sample in deploy/ must stay loadable and show the
    /// defaults it claims to show.
    #[test]
    fn deploy_sample_matches_defaults() {
        let c = PdConfig::from_yaml(include_str!("../../deploy/pd.yaml"), "deploy/pd.yaml").unwrap();
        c.validate().unwrap();
        assert_eq!(c, PdConfig::default());
    }
}
