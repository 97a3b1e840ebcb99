//! PD's Prometheus metrics. Names use base units, counters end in `_total`,
//! durations are `_seconds` histograms, and labels have a small fixed set of
//! values.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// PD's registry; served at `/metrics`.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<T: prometheus::core::Collector + Clone + 'static>(c: T) -> T {
    REGISTRY.register(Box::new(c.clone())).expect("metric registered twice");
    c
}

pub static CATALOG_VERSION: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new("pd_catalog_version", "Route catalog version applied on this member").unwrap())
});

pub static REGIONS: LazyLock<IntGauge> =
    LazyLock::new(|| register(IntGauge::new("pd_regions", "Regions in the route catalog").unwrap()));

pub static REGIONS_MISSING_REPLICAS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new("pd_regions_missing_replicas", "Regions with fewer peers than max-replicas").unwrap())
});

pub static STORES: LazyLock<IntGaugeVec> =
    LazyLock::new(|| register(IntGaugeVec::new(Opts::new("pd_stores", "Stores by state"), &["state"]).unwrap()));

pub static IS_LEADER: LazyLock<IntGauge> =
    LazyLock::new(|| register(IntGauge::new("pd_is_leader", "1 on the PD leader, 0 elsewhere").unwrap()));

/// The raft log's last index and the last applied one: a log that does not
/// move while stores report means their reports cost no raft write.
pub static RAFT_LAST_LOG_INDEX: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new("pd_raft_last_log_index", "Index of the last entry in this member's raft log").unwrap())
});
pub static RAFT_APPLIED_INDEX: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new("pd_raft_applied_index", "Index of the last raft entry applied to the catalog").unwrap())
});

pub static RAFT_TERM: LazyLock<IntGauge> =
    LazyLock::new(|| register(IntGauge::new("pd_raft_term", "Current raft term of this member").unwrap()));

/// Heartbeat messages received, by kind: store, region, split.
pub static HEARTBEAT_MESSAGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("pd_heartbeat_messages_total", "Store heartbeat stream messages received"),
            &["kind"],
        )
        .unwrap(),
    )
});

pub static HEARTBEAT_HANDLE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("pd_heartbeat_handle_seconds", "Time to handle one heartbeat message")
                .buckets(prometheus::exponential_buckets(0.000_05, 2.0, 16).unwrap()),
            &["kind"],
        )
        .unwrap(),
    )
});

pub static HEARTBEAT_STREAMS: LazyLock<IntGauge> =
    LazyLock::new(|| register(IntGauge::new("pd_heartbeat_streams", "Open store heartbeat streams").unwrap()));

pub static HEARTBEAT_STREAM_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(IntCounter::new("pd_heartbeat_stream_errors_total", "Heartbeat streams that ended in error").unwrap())
});

/// Region reports refused, by reason: stale (older epoch), stale_term (a
/// leader of an older term of the same region, at the same epoch),
/// conflict (would break a catalog invariant) or invalid (malformed).
pub static REGION_REPORTS_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("pd_region_reports_refused_total", "Region reports not applied to the catalog"),
            &["reason"],
        )
        .unwrap(),
    )
});

/// Region heartbeats refused from a store claiming to lead a region whose
/// leader the catalog places on another store: PD and the stores disagree
/// on who leads. A deposed leader's last heartbeat counts once; a steady
/// rise means PD names the wrong leader.
pub static REGION_LEADER_MISMATCHES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "pd_region_leader_mismatches_total",
            "Refused region heartbeats whose sender claims a region the catalog says another store leads",
        )
        .unwrap(),
    )
});

/// Commands this member refused to apply because they would have broken a
/// catalog invariant: a PD bug (the catalog stayed unchanged). Every member
/// refuses, and counts, the same log entries; a replay after a restart counts
/// again.
pub static CATALOG_INVARIANT_REFUSALS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "pd_catalog_invariant_refusals_total",
            "Catalog commands refused because applying them would break a catalog invariant",
        )
        .unwrap(),
    )
});

/// Routes sent, by `stream` (heartbeat, watch) and `kind` (full: a whole
/// snapshot; delta: only what changed since the receiver's version).
pub static ROUTE_PUSHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("pd_route_pushes_total", "Routes sent on heartbeat and watch streams, full snapshots or deltas"),
            &["stream", "kind"],
        )
        .unwrap(),
    )
});

/// Regions (upserted plus removed) in each route delta sent.
pub static ROUTE_DELTA_REGIONS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new("pd_route_delta_regions", "Regions upserted or removed per route delta sent")
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 14).unwrap()),
        )
        .unwrap(),
    )
});

/// Full snapshots stores asked for because a delta did not start at the
/// version they held.
pub static ROUTE_RESYNCS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "pd_route_resyncs_total",
            "Full route snapshots stores asked for after a delta they could not apply",
        )
        .unwrap(),
    )
});

/// Counts one push of `routes` on `stream`.
pub fn route_pushed(stream: &'static str, routes: &crate::routes::RoutePush) {
    ROUTE_PUSHES.with_label_values(&[stream, routes.kind()]).inc();
    if let crate::routes::RoutePush::Delta(d) = routes {
        ROUTE_DELTA_REGIONS.observe((d.upserted.len() + d.removed.len()) as f64);
    }
}

pub static WATCH_STREAMS: LazyLock<IntGauge> =
    LazyLock::new(|| register(IntGauge::new("pd_watch_streams", "Open watch-routes streams").unwrap()));

pub static GRPC_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("pd_grpc_request_seconds", "gRPC request latency by method")
                .buckets(prometheus::exponential_buckets(0.000_1, 2.0, 16).unwrap()),
            &["method"],
        )
        .unwrap(),
    )
});

/// gRPC errors by method and error type (the pdpb ErrorType name).
pub static GRPC_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("pd_grpc_errors_total", "gRPC requests answered with an error"),
            &["method", "type"],
        )
        .unwrap(),
    )
});

pub static PROPOSE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new("pd_raft_propose_seconds", "Catalog command propose-to-apply latency on the leader")
                .buckets(prometheus::exponential_buckets(0.000_1, 2.0, 16).unwrap()),
        )
        .unwrap(),
    )
});

/// Operators started, by kind and by who asked (admin, split-checker).
pub static OPERATORS_CREATED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("pd_operators_created_total", "Operators started by the PD leader"),
            &["kind", "source"],
        )
        .unwrap(),
    )
});

/// Operators ended, by kind and outcome (succeeded, failed, timed_out,
/// cancelled). Operators dropped because the member stopped leading are
/// not counted.
pub static OPERATORS_FINISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("pd_operators_finished_total", "Operators that ended, by outcome"),
            &["kind", "outcome"],
        )
        .unwrap(),
    )
});

pub static OPERATORS_RUNNING: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(Opts::new("pd_operators_running", "Operators running on this PD leader"), &["kind"]).unwrap(),
    )
});

/// From a split operator's creation until every Up store's route version
/// covers the split: what an operator waiting on `pdctl region split` sees.
pub static SPLIT_CONVERGED_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "pd_split_converged_seconds",
                "Time from a split operator's creation until every Up store has the split's routes",
            )
            .buckets(prometheus::exponential_buckets(0.01, 2.0, 16).unwrap()),
        )
        .unwrap(),
    )
});

/// How long each step of a membership operator took (move, add-peer,
/// remove-peer, leave-joint), by operator kind and step.
pub static OPERATOR_STEP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("pd_operator_step_seconds", "Time each step of a membership operator took")
                .buckets(prometheus::exponential_buckets(0.01, 2.0, 16).unwrap()),
            &["kind", "step"],
        )
        .unwrap(),
    )
});

/// Runs of the split checker on the leader.
pub static SPLIT_CHECKS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(IntCounter::new("pd_split_checks_total", "Split checker runs on the PD leader").unwrap())
});

/// Plans the replica checkers made, by checker (replica-repair,
/// decommission, joint) and plan kind (move, add_peer, remove_peer,
/// leave_joint).
pub static CHECKER_PLANS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("pd_checker_plans_total", "Plans the replica checkers made on the PD leader"),
            &["checker", "kind"],
        )
        .unwrap(),
    )
});

/// Regions a replica checker had to leave as they are because no healthy Up
/// store could take their replica, by checker.
pub static CHECKER_NO_CANDIDATE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "pd_checker_no_candidate_total",
                "Regions a replica checker could not plan for: no healthy Up store without a peer of the region",
            ),
            &["checker"],
        )
        .unwrap(),
    )
});

/// Offline stores the replica check marked Tombstone.
pub static STORES_TOMBSTONED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(IntCounter::new("pd_stores_tombstoned_total", "Offline stores marked Tombstone once drained").unwrap())
});

/// Stores the PD leader considers Down (silent longer than
/// max-store-down-time).
pub static STORES_DOWN: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new("pd_stores_down", "Stores silent for longer than max-store-down-time").unwrap())
});

/// Directives queued on store streams, by kind; re-sends count again.
pub static DIRECTIVES_SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(Opts::new("pd_directives_sent_total", "Directives sent to stores"), &["kind"]).unwrap())
});

/// Directives stores answered with an error, by the pdpb error type.
pub static DIRECTIVES_FAILED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(Opts::new("pd_directives_failed_total", "Directives stores could not carry out"), &["type"])
            .unwrap(),
    )
});

/// Forces every metric into the registry so `/metrics` lists them from the
/// start (zero-valued) rather than only once first touched.
pub fn init() {
    LazyLock::force(&CATALOG_VERSION);
    LazyLock::force(&REGIONS);
    LazyLock::force(&REGIONS_MISSING_REPLICAS);
    LazyLock::force(&STORES);
    LazyLock::force(&IS_LEADER);
    LazyLock::force(&RAFT_TERM);
    LazyLock::force(&HEARTBEAT_MESSAGES);
    LazyLock::force(&HEARTBEAT_HANDLE_SECONDS);
    LazyLock::force(&HEARTBEAT_STREAMS);
    LazyLock::force(&HEARTBEAT_STREAM_ERRORS);
    LazyLock::force(&REGION_REPORTS_REFUSED);
    LazyLock::force(&REGION_LEADER_MISMATCHES);
    LazyLock::force(&CATALOG_INVARIANT_REFUSALS);
    LazyLock::force(&RAFT_LAST_LOG_INDEX);
    LazyLock::force(&RAFT_APPLIED_INDEX);
    LazyLock::force(&ROUTE_PUSHES);
    LazyLock::force(&ROUTE_DELTA_REGIONS);
    LazyLock::force(&ROUTE_RESYNCS);
    LazyLock::force(&WATCH_STREAMS);
    LazyLock::force(&GRPC_SECONDS);
    LazyLock::force(&GRPC_ERRORS);
    LazyLock::force(&PROPOSE_SECONDS);
    LazyLock::force(&OPERATORS_CREATED);
    LazyLock::force(&OPERATORS_FINISHED);
    LazyLock::force(&OPERATORS_RUNNING);
    LazyLock::force(&SPLIT_CONVERGED_SECONDS);
    LazyLock::force(&OPERATOR_STEP_SECONDS);
    LazyLock::force(&SPLIT_CHECKS);
    LazyLock::force(&DIRECTIVES_SENT);
    LazyLock::force(&DIRECTIVES_FAILED);
    LazyLock::force(&CHECKER_PLANS);
    LazyLock::force(&CHECKER_NO_CANDIDATE);
    LazyLock::force(&STORES_TOMBSTONED);
    LazyLock::force(&STORES_DOWN);
    for checker in CHECKERS {
        CHECKER_NO_CANDIDATE.with_label_values(&[checker]);
        for kind in PLAN_KINDS {
            CHECKER_PLANS.with_label_values(&[checker, kind]);
        }
    }
    // Every label value a series can take, so dashboards and alerts see
    // zeros rather than missing series before the first event.
    for kind in ["store", "region", "split", "directive_failed"] {
        HEARTBEAT_MESSAGES.with_label_values(&[kind]);
        HEARTBEAT_HANDLE_SECONDS.with_label_values(&[kind]);
    }
    // The operator metrics' label values are the operators' own:
    // `operator::init_metrics` zeroes them.
    for ty in DIRECTIVE_ERROR_TYPES {
        DIRECTIVES_FAILED.with_label_values(&[ty]);
    }
    for reason in ["stale", "stale_term", "conflict", "invalid", "unavailable"] {
        REGION_REPORTS_REFUSED.with_label_values(&[reason]);
    }
    for state in ["up", "offline", "tombstone"] {
        STORES.with_label_values(&[state]);
    }
    for method in GRPC_METHODS {
        GRPC_SECONDS.with_label_values(&[method]);
        GRPC_ERRORS.with_label_values(&[method, "NOT_LEADER"]);
    }
    for stream in ["heartbeat", "watch"] {
        for kind in ["full", "delta"] {
            ROUTE_PUSHES.with_label_values(&[stream, kind]);
        }
    }
}

/// The `checker` label values of the checker metrics.
pub const CHECKERS: [&str; 3] = ["replica-repair", "decommission", "joint"];
/// The `kind` label values of `pd_checker_plans_total`.
pub const PLAN_KINDS: [&str; 4] = ["move", "add_peer", "remove_peer", "leave_joint"];

/// The error types stores answer directives with, per the protocol; others
/// are counted under their own name when they occur.
pub const DIRECTIVE_ERROR_TYPES: [&str; 4] = ["STALE_EPOCH", "NOT_LEADER", "INVALID_SPLIT_KEY", "UNAVAILABLE"];

/// The `method` label values of the gRPC metrics.
pub const GRPC_METHODS: [&str; 21] = [
    "get_members",
    "is_bootstrapped",
    "bootstrap",
    "alloc_id",
    "put_store",
    "get_store",
    "list_stores",
    "get_region",
    "get_region_by_id",
    "scan_regions",
    "list_routes",
    "watch_routes",
    "split_region",
    "list_operators",
    "get_operator",
    "cancel_operator",
    "transfer_leader",
    "move_region",
    "add_region_peer",
    "remove_region_peer",
    "delete_store",
];

/// The text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    TextEncoder::new().encode(&REGISTRY.gather(), &mut buf).expect("text encoding cannot fail");
    String::from_utf8(buf).expect("prometheus text is UTF-8")
}
