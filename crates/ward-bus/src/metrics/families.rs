//! The metric families and their registration in one registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

/// Request latencies, in seconds: 5 ms to 10 s (the Prometheus client default buckets).
const REQUEST_BUCKETS_SECS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Query latencies, in seconds: 0.5 ms to 5 s.
const QUERY_BUCKETS_SECS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

pub(crate) type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
pub(crate) type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HttpRequestLabels {
    pub(crate) route: String,
    pub(crate) method: String,
    pub(crate) status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HttpRouteLabels {
    pub(crate) route: String,
    pub(crate) method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GrpcRequestLabels {
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GrpcMethodLabels {
    pub(crate) service: String,
    pub(crate) method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModuleLabels {
    pub(crate) module: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PoolLabels {
    pub(crate) module: String,
    pub(crate) state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PartitionLabels {
    pub(crate) consumer: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConsumerEventLabels {
    pub(crate) consumer: String,
    pub(crate) topic: String,
    pub(crate) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub(crate) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RightLabels {
    pub(crate) right: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BuildLabels {
    pub(crate) version: &'static str,
    pub(crate) roles: String,
}

/// Every metric family, each also registered in `registry`.
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    /// Every sample name the families can write, as queries use them.
    pub(crate) sample_names: Vec<String>,
    pub(crate) http_requests: Family<HttpRequestLabels, Counter>,
    pub(crate) http_request_duration: HistogramFamily<HttpRouteLabels>,
    pub(crate) grpc_server_requests: Family<GrpcRequestLabels, Counter>,
    pub(crate) grpc_server_request_duration: HistogramFamily<GrpcMethodLabels>,
    pub(crate) db_query_duration: HistogramFamily<ModuleLabels>,
    pub(crate) db_query_errors: Family<ModuleLabels, Counter>,
    pub(crate) db_pool_connections: Family<PoolLabels, Gauge>,
    pub(crate) db_pool_max_connections: Family<ModuleLabels, Gauge>,
    pub(crate) outbox_pending_events: Family<ModuleLabels, Gauge>,
    pub(crate) outbox_oldest_event_age: Family<ModuleLabels, FloatGauge>,
    pub(crate) outbox_relayed_events: Family<ModuleLabels, Counter>,
    pub(crate) consumer_lag: Family<PartitionLabels, Gauge>,
    pub(crate) consumer_event_age: Family<PartitionLabels, FloatGauge>,
    pub(crate) consumer_events: Family<ConsumerEventLabels, Counter>,
    pub(crate) token_verifications: Family<OutcomeLabels, Counter>,
    pub(crate) authz_denials: Family<RightLabels, Counter>,
    pub(crate) build_info: Family<BuildLabels, Gauge>,
    pub(crate) ready: Gauge,
}

pub(crate) const PREFIX: &str = "ward";

/// A registry being filled, and the sample names of what it holds.
pub(crate) struct Families {
    pub(crate) registry: Registry,
    pub(crate) sample_names: Vec<String>,
}

impl Families {
    fn add(&mut self, name: &str, help: &str, metric: impl Metric + Clone) {
        let full_name = format!("{PREFIX}_{name}");
        // The encoder adds `_total` to counters, and writes a histogram as three series.
        let suffixes: &[&str] = match metric.metric_type() {
            MetricType::Counter => &["_total"],
            MetricType::Histogram => &["_bucket", "_sum", "_count"],
            MetricType::Info => &["_info"],
            MetricType::Gauge | MetricType::Unknown => &[""],
        };
        for suffix in suffixes {
            self.sample_names.push(format!("{full_name}{suffix}"));
        }
        self.registry.register(name, help, metric);
    }
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS_SECS)
}

fn query_histogram() -> Histogram {
    Histogram::new(QUERY_BUCKETS_SECS)
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut families = Families {
            registry: Registry::with_prefix(PREFIX),
            sample_names: Vec::new(),
        };
        let metrics = Self {
            registry: Registry::default(),
            sample_names: Vec::new(),
            http_requests: Family::default(),
            http_request_duration: Family::new_with_constructor(request_histogram),
            grpc_server_requests: Family::default(),
            grpc_server_request_duration: Family::new_with_constructor(request_histogram),
            db_query_duration: Family::new_with_constructor(query_histogram),
            db_query_errors: Family::default(),
            db_pool_connections: Family::default(),
            db_pool_max_connections: Family::default(),
            outbox_pending_events: Family::default(),
            outbox_oldest_event_age: Family::default(),
            outbox_relayed_events: Family::default(),
            consumer_lag: Family::default(),
            consumer_event_age: Family::default(),
            consumer_events: Family::default(),
            token_verifications: Family::default(),
            authz_denials: Family::default(),
            build_info: Family::default(),
            ready: Gauge::default(),
        };
        families.add(
            "http_requests",
            "Responses sent by the public API, by route pattern, method and status",
            metrics.http_requests.clone(),
        );
        families.add(
            "http_request_duration_seconds",
            "Time the public API took to answer, by route pattern and method",
            metrics.http_request_duration.clone(),
        );
        families.add(
            "grpc_server_requests",
            "gRPC calls served, by service, method and status code",
            metrics.grpc_server_requests.clone(),
        );
        families.add(
            "grpc_server_request_duration_seconds",
            "Time gRPC calls took to answer, by service and method",
            metrics.grpc_server_request_duration.clone(),
        );
        families.add(
            "db_query_duration_seconds",
            "Time database statements took, by module",
            metrics.db_query_duration.clone(),
        );
        families.add(
            "db_query_errors",
            "Database statements that failed, by module",
            metrics.db_query_errors.clone(),
        );
        families.add(
            "db_pool_connections",
            "Open database connections, by module and state (idle or in_use)",
            metrics.db_pool_connections.clone(),
        );
        families.add(
            "db_pool_max_connections",
            "The most connections a module's database pool opens",
            metrics.db_pool_max_connections.clone(),
        );
        families.add(
            "outbox_pending_events",
            "Committed events not yet relayed to the event log, by module",
            metrics.outbox_pending_events.clone(),
        );
        families.add(
            "outbox_oldest_event_age_seconds",
            "Age of the oldest event still in the outbox (0 when empty), by module",
            metrics.outbox_oldest_event_age.clone(),
        );
        families.add(
            "outbox_relayed_events",
            "Events the outbox relay moved to the event log, by module",
            metrics.outbox_relayed_events.clone(),
        );
        families.add(
            "consumer_lag_events",
            "Records in a partition the consumer has not read yet (log end minus next offset)",
            metrics.consumer_lag.clone(),
        );
        families.add(
            "consumer_event_age_seconds",
            "How old the last event a consumer read was when it read it, per partition",
            metrics.consumer_event_age.clone(),
        );
        families.add(
            "consumer_events",
            "Events consumers read, by consumer, topic and outcome",
            metrics.consumer_events.clone(),
        );
        families.add(
            "token_verifications",
            "Access token verifications, by outcome (ok, expired, revoked, invalid)",
            metrics.token_verifications.clone(),
        );
        families.add(
            "authz_denials",
            "Calls refused because the caller's token does not allow the right, by right",
            metrics.authz_denials.clone(),
        );
        families.add(
            "build_info",
            "Always 1; the labels say which version runs which roles",
            metrics.build_info.clone(),
        );
        families.add(
            "ready",
            "Whether this process is ready to serve (1) or not (0)",
            metrics.ready.clone(),
        );
        Self {
            registry: families.registry,
            sample_names: families.sample_names,
            ..metrics
        }
    }
}
