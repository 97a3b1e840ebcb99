//! The storage node's Prometheus metrics: base units, `_total` counters,
//! `_seconds` histograms, small fixed label sets.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<T: prometheus::core::Collector + Clone + 'static>(c: T) -> T {
    REGISTRY.register(Box::new(c.clone())).expect("metric registered twice");
    c
}

fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.0, 18).expect("buckets")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).expect("gauge"))
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("counter"))
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("counter vec"))
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("histogram"))
}

fn histogram_vec(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    register(HistogramVec::new(HistogramOpts::new(name, help).buckets(latency_buckets()), labels).expect("histogram"))
}

pub static REGIONS: LazyLock<IntGauge> = LazyLock::new(|| gauge("store_regions", "Region peers hosted on this store"));
pub static LEADERS: LazyLock<IntGauge> = LazyLock::new(|| gauge("store_leaders", "Regions led from this store"));
pub static HIBERNATED_REGIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge("store_hibernated_regions", "Region peers whose raft timers are stopped for lack of traffic")
});
pub static DORMANT_REGIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge("store_dormant_regions", "Hibernated region peers whose raft groups are shut down until woken")
});
/// Peers hibernating and waking, by event: hibernated, refused (a member
/// stayed awake), dormant and revived (a group shut down and restarted),
/// and the wake causes request, raft_message, leader_lost.
pub static HIBERNATION_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "store_hibernation_events_total",
        "Region peers hibernating, refusing to, and waking (by cause)",
        &["event"],
    )
});
pub static ROUTE_VERSION: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("store_route_version", "Route catalog version this store has applied"));
/// Routes from PD by kind (full, delta) and result: applied, stale (held
/// already), gap or malformed (refused; a full snapshot is asked for).
pub static ROUTE_UPDATES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec("store_route_updates_total", "Route snapshots and deltas received from PD", &["kind", "result"])
});

pub static KV_REQUESTS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("store_kv_requests_total", "KV requests received", &["type"]));
/// By request type and error kind (not_leader, epoch_not_match, ...).
pub static KV_ERRORS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("store_kv_errors_total", "KV requests answered with an error", &["type", "error"]));
pub static KV_SECONDS: LazyLock<HistogramVec> =
    LazyLock::new(|| histogram_vec("store_kv_request_seconds", "KV request latency on the receiving store", &["type"]));
pub static KV_FORWARDED: LazyLock<IntCounter> =
    LazyLock::new(|| counter("store_kv_forwarded_total", "KV requests forwarded to the leader's store"));
/// Requests forwarded by route whose target answered `NotLeader` naming
/// another store's peer: PD's routes named a leader that was not one, and
/// the store keeps that answer as a leader hint. A steady rise means PD's
/// leaders lag the stores'.
pub static KV_LEADER_HINTS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "store_kv_leader_hints_total",
        "Forwarded KV requests answered NotLeader naming another leader than the route's",
    )
});
/// Messages and commands received on `BatchCommands` streams: their ratio
/// is how many requests one message carries.
pub static KV_BATCH_MESSAGES: LazyLock<IntCounter> =
    LazyLock::new(|| counter("store_kv_batch_messages_total", "Messages received on KV batch streams"));
pub static KV_BATCH_COMMANDS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("store_kv_batch_commands_total", "Requests received on KV batch streams"));
pub static VOTES_REFUSED_AFTER_RESTART: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("store_votes_refused_after_restart_total", "Vote requests refused in the quiet period after a restart")
});
pub static DUPLICATE_WRITES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("store_duplicate_writes_total", "Repeated writes answered from the session table instead of applied")
});

/// Raft propose (client write) to apply, on the leader.
pub static RAFT_PROPOSE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram("store_raft_propose_apply_seconds", "Raft write from propose to applied on the leader", latency_buckets())
});
/// A replicated write's stages on the leader (see `raft::stage_clock`), in
/// finer buckets than the others: the stages of a fast write are tens of
/// microseconds apart.
pub static RAFT_STAGE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "store_raft_stage_seconds",
                "Time a raft write spends per stage: propose, leader_append, replicate, follower_append, commit, apply, reply",
            )
            .buckets(prometheus::exponential_buckets(0.000_025, 1.5, 24).expect("buckets")),
            &["stage"],
        )
        .expect("histogram"),
    )
});
pub static RAFT_APPLY_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram("store_raft_apply_seconds", "Time to apply one batch of committed entries", latency_buckets())
});
pub static RAFT_ENTRIES_APPENDED: LazyLock<IntCounter> =
    LazyLock::new(|| counter("store_raft_log_entries_appended_total", "Raft log entries appended, all regions"));
pub static RAFT_APPENDS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("store_raft_log_appends_total", "Raft log append calls, all regions"));

pub static GROUP_COMMITS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("store_group_commits_total", "Durable group-commit transactions (one fsync each)"));
pub static LAZY_COMMITS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("store_group_commits_lazy_total", "Group-commit transactions of applies only (no fsync)"));
pub static DATA_SYNCS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("store_data_syncs_total", "Durable commits of the data file, which carry its lazy commits to disk")
});
pub static RAFT_LOG_SEGMENTS: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge("store_raft_log_segments", "Segment files the raft log keeps on disk, as of its last rotation")
});
pub static RAFT_LOG_CARRIED_ENTRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "store_raft_log_carried_entries_total",
        "Live raft entries copied from an old raft log segment into a new one so the old one could be deleted",
    )
});
/// Tails of the newest raft log segment dropped at open: bytes after its
/// last whole record that a crash may have torn (each also logged).
pub static RAFT_LOG_TORN_TAILS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("store_raft_log_torn_tails_total", "Raft log tails a crash may have torn, dropped when the log opened")
});
/// Raft log opens refused, by reason: damage (bytes that were durable are
/// not whole) or torn_tail (refused by recovery-mode absolute-consistency).
pub static RAFT_LOG_OPEN_REFUSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec("store_raft_log_open_refusals_total", "Raft log opens refused for damage or a torn tail", &["reason"])
});
pub static GROUP_COMMIT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "store_group_commit_seconds",
        "Duration of one durable group-commit transaction, fsync included",
        latency_buckets(),
    )
});
/// Jobs left out of their batch because they failed; the rest of the batch
/// was committed without them.
pub static GROUP_COMMIT_JOB_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("store_group_commit_job_failures_total", "Write jobs that failed and were left out of their batch")
});
pub static GROUP_COMMIT_BATCH_SIZE: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "store_group_commit_batch_size",
        "Write jobs per group-commit transaction",
        prometheus::exponential_buckets(1.0, 2.0, 12).expect("buckets"),
    )
});

pub static RAFT_MESSAGES_SENT: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("store_raft_messages_sent_total", "Raft messages sent to other stores", &["type"]));
pub static RAFT_MESSAGES_RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec("store_raft_messages_received_total", "Raft messages received from other stores", &["type"])
});
pub static RAFT_MESSAGES_DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec("store_raft_messages_dropped_total", "Raft messages that could not be delivered", &["reason"])
});
/// Raft streams opened to peer stores: one per peer store while the
/// connection holds, so a climbing count means streams keep breaking.
pub static RAFT_STREAMS_OPENED: LazyLock<IntCounter> =
    LazyLock::new(|| counter("store_raft_streams_opened_total", "Raft message streams opened to peer stores"));

/// Peer creations, range claims and snapshots refused because they would
/// break the store's range invariant or bring back a destroyed peer, by
/// what asked (`source`) and why (`reason`).
pub static PEER_REFUSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "store_peer_refusals_total",
        "Peer creations, range claims and snapshots refused on this store",
        &["source", "reason"],
    )
});
/// Every `source` of [`PEER_REFUSALS`].
pub const PEER_REFUSAL_SOURCES: [&str; 5] = ["startup", "route", "raft_message", "snapshot", "split"];

pub static SNAPSHOTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec("store_snapshots_total", "Region snapshots built, sent, received or installed", &["direction"])
});
pub static SNAPSHOT_BYTES: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("store_snapshot_bytes_total", "Region snapshot bytes", &["direction"]));
pub static SNAPSHOT_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec("store_snapshot_seconds", "Time to build, send, receive or install a snapshot", &["direction"])
});

pub static PD_HEARTBEATS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec("store_pd_heartbeats_total", "Messages sent to PD on the heartbeat stream", &["kind"])
});
pub static PD_STREAM_RECONNECTS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("store_pd_stream_reconnects_total", "Times the PD heartbeat stream was reopened"));

/// Peers destroyed on this store, by why (`removed`: applied its own
/// removal; `routes`: PD's routes show it removed).
pub static PEERS_DESTROYED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec("store_peers_destroyed_total", "Region peers destroyed on this store after their removal", &["reason"])
});
/// Writer jobs of a peer whose destroy had begun, refused on the writer
/// thread instead of written, by what the job was (`apply`, `install`,
/// `log`).
pub static FENCED_JOBS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "store_fenced_jobs_total",
        "State-machine writer jobs refused because their peer was being destroyed",
        &["job"],
    )
});
pub static SPLITS_APPLIED: LazyLock<IntCounter> =
    LazyLock::new(|| counter("store_splits_applied_total", "Split admin entries applied by this store's replicas"));
/// PD directives this store received, by kind and what became of them
/// (`proposed`, `refused`, `repeated`: already carried out, report re-sent).
pub static DIRECTIVES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec("store_pd_directives_total", "PD directives received, by kind and result", &["kind", "result"])
});
/// Raft messages for a region this store has no peer of while a local
/// region still covers its keys (a split not applied here yet): held until
/// the split applies, then `delivered`, or `dropped` at the deadline.
pub static RAFT_MESSAGES_HELD: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "store_raft_messages_held_total",
        "Raft messages held for a split not applied here yet, by outcome",
        &["outcome"],
    )
});

pub static REGION_SIZE_BYTES: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "store_region_size_bytes",
        "Approximate region sizes as reported to PD",
        prometheus::exponential_buckets(1024.0, 4.0, 12).expect("buckets"),
    )
});

/// Registers every metric so `/metrics` lists them from the start.
pub fn init() {
    LazyLock::force(&REGIONS);
    LazyLock::force(&LEADERS);
    LazyLock::force(&ROUTE_VERSION);
    LazyLock::force(&ROUTE_UPDATES);
    LazyLock::force(&HIBERNATED_REGIONS);
    LazyLock::force(&DORMANT_REGIONS);
    for event in ["hibernated", "refused", "dormant", "revived", "request", "raft_message", "leader_lost"] {
        HIBERNATION_EVENTS.with_label_values(&[event]);
    }
    LazyLock::force(&KV_REQUESTS);
    LazyLock::force(&KV_ERRORS);
    LazyLock::force(&KV_SECONDS);
    LazyLock::force(&KV_FORWARDED);
    LazyLock::force(&KV_LEADER_HINTS);
    LazyLock::force(&KV_BATCH_MESSAGES);
    LazyLock::force(&KV_BATCH_COMMANDS);
    LazyLock::force(&DUPLICATE_WRITES);
    LazyLock::force(&VOTES_REFUSED_AFTER_RESTART);
    LazyLock::force(&RAFT_PROPOSE_SECONDS);
    LazyLock::force(&RAFT_APPLY_SECONDS);
    for stage in ["propose", "leader_append", "replicate", "follower_append", "commit", "apply", "reply"] {
        RAFT_STAGE_SECONDS.with_label_values(&[stage]);
    }
    for (kind, result) in [
        ("full", "applied"),
        ("full", "stale"),
        ("delta", "applied"),
        ("delta", "stale"),
        ("delta", "gap"),
        ("delta", "malformed"),
    ] {
        ROUTE_UPDATES.with_label_values(&[kind, result]);
    }
    LazyLock::force(&RAFT_ENTRIES_APPENDED);
    LazyLock::force(&RAFT_APPENDS);
    LazyLock::force(&GROUP_COMMITS);
    LazyLock::force(&LAZY_COMMITS);
    LazyLock::force(&DATA_SYNCS);
    LazyLock::force(&RAFT_LOG_SEGMENTS);
    LazyLock::force(&RAFT_LOG_CARRIED_ENTRIES);
    LazyLock::force(&RAFT_LOG_TORN_TAILS);
    for reason in ["damage", "torn_tail"] {
        RAFT_LOG_OPEN_REFUSALS.with_label_values(&[reason]);
    }
    LazyLock::force(&GROUP_COMMIT_SECONDS);
    LazyLock::force(&GROUP_COMMIT_BATCH_SIZE);
    LazyLock::force(&GROUP_COMMIT_JOB_FAILURES);
    LazyLock::force(&RAFT_MESSAGES_SENT);
    LazyLock::force(&RAFT_MESSAGES_RECEIVED);
    LazyLock::force(&RAFT_MESSAGES_DROPPED);
    LazyLock::force(&RAFT_STREAMS_OPENED);
    LazyLock::force(&PEER_REFUSALS);
    LazyLock::force(&SNAPSHOTS);
    LazyLock::force(&SNAPSHOT_BYTES);
    LazyLock::force(&SNAPSHOT_SECONDS);
    LazyLock::force(&PD_HEARTBEATS);
    LazyLock::force(&PD_STREAM_RECONNECTS);
    LazyLock::force(&REGION_SIZE_BYTES);
    LazyLock::force(&SPLITS_APPLIED);
    LazyLock::force(&PEERS_DESTROYED);
    for reason in ["removed", "routes"] {
        PEERS_DESTROYED.with_label_values(&[reason]);
    }
    for job in ["apply", "install", "log"] {
        FENCED_JOBS.with_label_values(&[job]);
    }
    LazyLock::force(&DIRECTIVES);
    LazyLock::force(&RAFT_MESSAGES_HELD);
    // Every label value a series can take, so dashboards and alerts see
    // zeros rather than missing series before the first event.
    for op in ["get", "put", "delete", "scan", "batch_get", "batch_put", "cas"] {
        KV_REQUESTS.with_label_values(&[op]);
        KV_SECONDS.with_label_values(&[op]);
        KV_ERRORS.with_label_values(&[op, "not_leader"]);
    }
    for kind in ["append", "vote", "transfer_leader", "hibernate", "wake"] {
        RAFT_MESSAGES_SENT.with_label_values(&[kind]);
        RAFT_MESSAGES_RECEIVED.with_label_values(&[kind]);
    }
    for reason in ["unknown_store", "unreachable", "refused", "refused_here", "partitioned"] {
        RAFT_MESSAGES_DROPPED.with_label_values(&[reason]);
    }
    for source in PEER_REFUSAL_SOURCES {
        for reason in crate::node::refusal::PeerRefused::LABELS {
            PEER_REFUSALS.with_label_values(&[source, reason]);
        }
    }
    for dir in ["built", "sent", "received", "installed"] {
        SNAPSHOTS.with_label_values(&[dir]);
        SNAPSHOT_BYTES.with_label_values(&[dir]);
    }
    for dir in ["build", "send", "receive", "install"] {
        SNAPSHOT_SECONDS.with_label_values(&[dir]);
    }
    for kind in ["store", "region", "split", "directive_failed"] {
        PD_HEARTBEATS.with_label_values(&[kind]);
    }
    for kind in ["split", "transfer_leader", "add_learner", "change_peers", "remove_peer"] {
        for result in ["proposed", "refused", "repeated"] {
            DIRECTIVES.with_label_values(&[kind, result]);
        }
    }
    for outcome in ["delivered", "dropped"] {
        RAFT_MESSAGES_HELD.with_label_values(&[outcome]);
    }
}

pub fn render() -> String {
    let mut buf = Vec::new();
    TextEncoder::new().encode(&REGISTRY.gather(), &mut buf).expect("text encoding cannot fail");
    String::from_utf8(buf).expect("prometheus text is UTF-8")
}
