//! Process-wide Prometheus metrics: one registry every crate records into, rendered by the ops
//! listener's `/metrics` in the Prometheus text format (0.0.4).
//!
//! One registry per process, because the public listener, the gRPC server, the workers and the
//! ops listener (a separate `App`, often a separate port) all share the figures. Label values are
//! bounded: route patterns, gRPC method names, module, consumer and topic names from the code,
//! never a patient id or a raw path.

mod db_pool;
mod families;

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

pub use crate::metrics::db_pool::instrument_database;
use crate::metrics::families::{
    BuildLabels, ConsumerEventLabels, GrpcMethodLabels, GrpcRequestLabels, HttpRequestLabels,
    HttpRouteLabels, Metrics, OutcomeLabels, PartitionLabels, RightLabels,
};
pub(crate) use crate::metrics::families::{ModuleLabels, PoolLabels};

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The route label of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Records one response of the public API. `route` is the matched route pattern
/// (`/api/patients/{id}`) or [`UNMATCHED_ROUTE`].
pub fn observe_http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let request_labels = HttpRequestLabels {
        route: route.to_string(),
        method: method.to_string(),
        status,
    };
    METRICS.http_requests.get_or_create(&request_labels).inc();
    let route_labels = HttpRouteLabels {
        route: request_labels.route,
        method: request_labels.method,
    };
    METRICS
        .http_request_duration
        .get_or_create(&route_labels)
        .observe(elapsed.as_secs_f64());
}

/// Records one gRPC call served. `code` is the status code's name (`OK`, `NotFound`, ...).
pub fn observe_grpc_request(service: &str, method: &str, code: &'static str, elapsed: Duration) {
    let request_labels = GrpcRequestLabels {
        service: service.to_string(),
        method: method.to_string(),
        code,
    };
    METRICS
        .grpc_server_requests
        .get_or_create(&request_labels)
        .inc();
    let method_labels = GrpcMethodLabels {
        service: request_labels.service,
        method: request_labels.method,
    };
    METRICS
        .grpc_server_request_duration
        .get_or_create(&method_labels)
        .observe(elapsed.as_secs_f64());
}

/// Sets a module's outbox backlog: how many events wait and how old the oldest is.
pub fn set_outbox_backlog(module: &str, num_pending: u64, oldest_age: Duration) {
    let labels = ModuleLabels {
        module: module.to_string(),
    };
    let num_pending_gauge = i64::try_from(num_pending).unwrap_or(i64::MAX);
    METRICS
        .outbox_pending_events
        .get_or_create(&labels)
        .set(num_pending_gauge);
    METRICS
        .outbox_oldest_event_age
        .get_or_create(&labels)
        .set(oldest_age.as_secs_f64());
}

/// Counts events a module's relay moved to the log.
pub fn count_outbox_relayed(module: &str, num_events: usize) {
    let labels = ModuleLabels {
        module: module.to_string(),
    };
    METRICS
        .outbox_relayed_events
        .get_or_create(&labels)
        .inc_by(num_events as u64);
}

/// Sets how many records of one partition a consumer has yet to read.
pub fn set_consumer_lag(consumer: &str, topic: &str, partition: i32, num_unread: i64) {
    let labels = PartitionLabels {
        consumer: consumer.to_string(),
        topic: topic.to_string(),
        partition,
    };
    METRICS
        .consumer_lag
        .get_or_create(&labels)
        .set(num_unread.max(0));
}

/// Sets how old the event a consumer just read was (now minus its `occurred_at`).
pub fn set_consumer_event_age(consumer: &str, topic: &str, partition: i32, age: Duration) {
    let labels = PartitionLabels {
        consumer: consumer.to_string(),
        topic: topic.to_string(),
        partition,
    };
    METRICS
        .consumer_event_age
        .get_or_create(&labels)
        .set(age.as_secs_f64());
}

/// What became of an event a consumer read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerOutcome {
    /// The handler applied it.
    Applied,
    /// It was applied before (a relay retry or a replay) and changed nothing.
    Redelivered,
    /// The handler refused it as unusable; it was skipped.
    Unusable,
    /// Its bytes are no envelope; it was skipped.
    Undecodable,
    /// The handler failed; the batch stops and the event is retried.
    Failed,
}

impl ConsumerOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Redelivered => "redelivered",
            Self::Unusable => "unusable",
            Self::Undecodable => "undecodable",
            Self::Failed => "failed",
        }
    }
}

/// Counts one event a consumer read.
pub fn count_consumer_event(consumer: &str, topic: &str, outcome: ConsumerOutcome) {
    let labels = ConsumerEventLabels {
        consumer: consumer.to_string(),
        topic: topic.to_string(),
        outcome: outcome.as_str(),
    };
    METRICS.consumer_events.get_or_create(&labels).inc();
}

/// How an access token verification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOutcome {
    Ok,
    Expired,
    Revoked,
    /// Unreadable, badly signed, signed by an unknown key or missing claims.
    Invalid,
}

impl TokenOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Invalid => "invalid",
        }
    }
}

/// Counts one access token verification.
pub fn count_token_verification(outcome: TokenOutcome) {
    let labels = OutcomeLabels {
        outcome: outcome.as_str(),
    };
    METRICS.token_verifications.get_or_create(&labels).inc();
}

/// Counts one call refused because the token does not allow `right` (a 403).
pub fn count_authz_denial(right: &'static str) {
    METRICS
        .authz_denials
        .get_or_create(&RightLabels { right })
        .inc();
}

/// Says which roles this process runs, with Ward's version (`ward_build_info`).
pub fn set_build_info(roles: &str) {
    let labels = BuildLabels {
        version: env!("CARGO_PKG_VERSION"),
        roles: roles.to_string(),
    };
    METRICS.build_info.clear();
    METRICS.build_info.get_or_create(&labels).set(1);
}

/// Sets `ward_ready`.
pub fn set_ready(is_ready: bool) {
    METRICS.ready.set(i64::from(is_ready));
}

/// Returns every sample name `/metrics` may write (`ward_http_requests_total`,
/// `ward_http_request_duration_seconds_bucket`, ...), whether or not it has a series yet: a
/// family appears in the text only once it has one.
pub fn sample_names() -> &'static [String] {
    &METRICS.sample_names
}

/// Returns every metric in the Prometheus text format, sampling the database pools first.
pub fn render() -> String {
    db_pool::sample_pools(
        &METRICS.db_pool_connections,
        &METRICS.db_pool_max_connections,
    );
    let mut text = String::new();
    // Writing to a String cannot fail; the encoder fails only when its writer does.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &METRICS.registry);
    text
}

fn db_query_metrics(module: &str) -> (Histogram, Counter) {
    let labels = ModuleLabels {
        module: module.to_string(),
    };
    let histogram = METRICS.db_query_duration.get_or_create_owned(&labels);
    let errors = METRICS.db_query_errors.get_or_create_owned(&labels);
    (histogram, errors)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn value_of(text: &str, series: &str) -> f64 {
        let line = text
            .lines()
            .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn http_requests_are_counted_by_route_and_timed() {
        let route = "/test/http/{id}";
        observe_http_request(route, "GET", 404, Duration::from_millis(30));
        observe_http_request(route, "GET", 404, Duration::from_millis(3));

        let text = render();

        let counter =
            r#"ward_http_requests_total{route="/test/http/{id}",method="GET",status="404"}"#;
        assert_eq!(value_of(&text, counter), 2.0);
        let fast_bucket = r#"ward_http_request_duration_seconds_bucket{route="/test/http/{id}",method="GET",le="0.005"}"#;
        let slow_bucket = r#"ward_http_request_duration_seconds_bucket{route="/test/http/{id}",method="GET",le="0.05"}"#;
        assert_eq!(value_of(&text, fast_bucket), 1.0);
        assert_eq!(value_of(&text, slow_bucket), 2.0);
        assert!(text.contains("# TYPE ward_http_requests_total counter\n"));
        assert!(text.contains("# TYPE ward_http_request_duration_seconds histogram\n"));
    }

    #[test]
    fn gauges_take_the_last_value_and_lag_is_never_negative() {
        set_consumer_lag("test-consumer", "test.topic", 3, 7);
        set_consumer_lag("test-consumer", "test.topic", 4, -2);
        set_outbox_backlog("test-outbox", 5, Duration::from_millis(2500));

        let text = render();

        let lag = r#"ward_consumer_lag_events{consumer="test-consumer",topic="test.topic",partition="3"}"#;
        let negative_lag = r#"ward_consumer_lag_events{consumer="test-consumer",topic="test.topic",partition="4"}"#;
        assert_eq!(value_of(&text, lag), 7.0);
        assert_eq!(value_of(&text, negative_lag), 0.0);
        let age = r#"ward_outbox_oldest_event_age_seconds{module="test-outbox"}"#;
        assert_eq!(value_of(&text, age), 2.5);
    }

    #[test]
    fn build_info_names_one_set_of_roles() {
        set_build_info("gateway,patients");
        set_build_info("gateway");

        let text = render();

        let info = format!(
            r#"ward_build_info{{version="{}",roles="gateway"}}"#,
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(value_of(&text, &info), 1.0);
        assert!(!text.contains(r#"roles="gateway,patients""#));
    }

    #[test]
    fn sample_names_cover_what_the_text_holds() {
        observe_grpc_request("test.Service", "Call", "OK", Duration::from_millis(1));
        count_authz_denial("users:admin");
        set_ready(true);

        let text = render();

        let names = sample_names();
        for expected in [
            "ward_grpc_server_requests_total",
            "ward_grpc_server_request_duration_seconds_bucket",
            "ward_db_pool_connections",
            "ward_consumer_event_age_seconds",
            "ward_authz_denials_total",
            "ward_build_info",
            "ward_ready",
        ] {
            assert!(names.iter().any(|name| name == expected), "{expected}");
        }
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name_end = line.find(['{', ' ']).unwrap();
            let name = &line[..name_end];
            assert!(names.iter().any(|known| known == name), "{name}");
        }
    }

    /// The `ward_*` words of a file in the repository.
    fn ward_names_in(path_from_root: &str) -> BTreeSet<String> {
        let path = format!("{}/../../{path_from_root}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut names = BTreeSet::new();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("ward_") {
                names.insert(word.to_string());
            }
        }
        assert!(!names.is_empty(), "{path_from_root} names no metric");
        names
    }

    #[test]
    fn alert_rules_and_dashboard_use_only_metrics_ward_exports() {
        let exported: BTreeSet<String> = sample_names().iter().cloned().collect();
        for file in [
            "deploy/prometheus/alerts.yml",
            "deploy/prometheus/alerts_test.yml",
            "deploy/grafana/ward.json",
        ] {
            let used = ward_names_in(file);
            // Text may name a histogram by its family (`ward_db_query_duration_seconds`).
            let unknown: Vec<&String> = used
                .iter()
                .filter(|name| {
                    !exported.contains(*name) && !exported.contains(&format!("{name}_bucket"))
                })
                .collect();
            assert!(
                unknown.is_empty(),
                "{file} uses unknown metrics {unknown:?}"
            );
        }
    }
}
