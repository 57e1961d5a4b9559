//! Traces over the real wire: `ward` exports spans over OTLP/HTTP (protobuf) to a receiver this
//! test runs, and one trace follows a request from the gateway, through gRPC and the event log
//! (Kafka when split), to the consumers that handle its event.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;

use crate::cluster::{Broker, Databases};
use crate::helpers::{TestApp, Workdir, json_of, patient_body, ward_command};
use crate::otlp_receiver::{OtlpReceiver, ReceivedSpan};

const TRACE_WAIT: Duration = Duration::from_secs(60);

/// The gRPC method the gateway calls for `POST /api/patients` when patients runs elsewhere.
const CREATE_PATIENT: &str = "/ward.v1.PatientService/CreatePatient";

/// A caller's trace: W3C ids made fresh for each test, sampled.
struct CallerTrace {
    trace_id: String,
    span_id: String,
}

impl CallerTrace {
    fn new() -> CallerTrace {
        let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        CallerTrace {
            trace_id: uuid::Uuid::new_v4().simple().to_string(),
            span_id,
        }
    }

    fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }
}

/// The spans between `span` and the caller's span, nearest first; `None` while one of them has
/// not arrived (an exporter sends a span when it ends, in batches).
fn ancestors<'a>(
    spans: &'a [ReceivedSpan],
    span: &'a ReceivedSpan,
    caller: &CallerTrace,
) -> Option<Vec<&'a ReceivedSpan>> {
    let mut chain = Vec::new();
    let mut current = span;
    while current.parent_span_id != caller.span_id {
        let parent = spans
            .iter()
            .find(|candidate| candidate.span_id == current.parent_span_id)?;
        chain.push(parent);
        current = parent;
        assert!(chain.len() < 64, "a cycle in the trace: {spans:#?}");
    }
    Some(chain)
}

/// The spans one traced `POST /api/patients` leaves, once they have all arrived.
struct RequestTrace {
    http: ReceivedSpan,
    grpc_opt: Option<ReceivedSpan>,
    consumers: Vec<ReceivedSpan>,
    /// The ids of the spans from each consumer span up to the caller's.
    consumer_ancestors: Vec<Vec<String>>,
}

/// The trace of one `POST /api/patients` once it is whole: the gateway's HTTP span, (when
/// `expect_grpc`) the patients module's gRPC server span, and both consumers' spans for the
/// `PatientRegistered` it caused, each joined to the caller's span by spans that arrived.
fn request_trace(
    spans: &[ReceivedSpan],
    caller: &CallerTrace,
    expect_grpc: bool,
) -> Option<RequestTrace> {
    let http = spans
        .iter()
        .find(|span| span.kind == SpanKind::Server && span.attribute("route").is_some())?
        .clone();
    let grpc_opt = spans
        .iter()
        .find(|span| {
            span.kind == SpanKind::Server && span.attribute("rpc.method") == Some(CREATE_PATIENT)
        })
        .cloned();
    if expect_grpc && grpc_opt.is_none() {
        return None;
    }
    let consumers: Vec<ReceivedSpan> = spans
        .iter()
        .filter(|span| {
            span.kind == SpanKind::Consumer
                && span.attribute("event_type") == Some("PatientRegistered")
        })
        .cloned()
        .collect();
    if consumers.len() < 2 {
        return None;
    }
    let mut consumer_ancestors = Vec::new();
    for consumer in &consumers {
        let chain = ancestors(spans, consumer, caller)?;
        consumer_ancestors.push(chain.iter().map(|span| span.span_id.clone()).collect());
    }
    Some(RequestTrace {
        http,
        grpc_opt,
        consumers,
        consumer_ancestors,
    })
}

/// What holds in both deployments: the gateway continued the caller's trace and recorded the
/// request, and both consumers handled the event inside that trace, below the gateway's span.
fn assert_request_trace(trace: &RequestTrace, caller: &CallerTrace) {
    assert_eq!(trace.http.trace_id, caller.trace_id);
    assert_eq!(
        trace.http.parent_span_id, caller.span_id,
        "{:?}",
        trace.http
    );
    assert_eq!(trace.http.name, "POST /api/patients");
    assert_eq!(trace.http.attribute("method"), Some("POST"));
    assert_eq!(trace.http.attribute("route"), Some("/api/patients"));
    assert_eq!(trace.http.attribute("status"), Some("201"));

    let mut consumer_names: Vec<&str> = trace
        .consumers
        .iter()
        .filter_map(|span| span.attribute("consumer"))
        .collect();
    consumer_names.sort_unstable();
    assert_eq!(consumer_names, ["analytics", "billing"]);
    for (consumer, chain) in trace.consumers.iter().zip(&trace.consumer_ancestors) {
        assert_eq!(consumer.trace_id, caller.trace_id);
        assert_eq!(consumer.name, "PatientRegistered process");
        assert!(
            chain.contains(&trace.http.span_id),
            "the consumer span descends from the gateway's: {consumer:?}"
        );
    }
}

#[tokio::test]
async fn one_process_exports_the_requests_trace_when_it_stops() {
    // Arrange: no periodic export during the test, so the spans can only come from the flush
    // at exit.
    let receiver = OtlpReceiver::start();
    let dir = Workdir::new();
    let env = [
        (
            "WARD_TELEMETRY__OTLP_ENDPOINT".to_string(),
            receiver.endpoint(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "600000".to_string()),
    ];
    let app = TestApp::spawn_with_env(&dir.path, &["--demo"], &env).await;
    let token = app.demo_token().await;
    let caller = CallerTrace::new();

    // Act: register; wait until both consumers applied the event (15 demo patients + 1); stop.
    let id = send_traced_registration(&app, &token, &caller).await;
    app.eventually(
        TRACE_WAIT,
        "analytics and billing to apply the event",
        || async {
            let summary: Value = app
                .get(&token, "/api/analytics/summary")
                .await
                .json()
                .await
                .ok()?;
            let account = app
                .get(&token, &format!("/api/billing/accounts/{id}"))
                .await;
            (summary["patientsRegistered"] == 16 && account.status() == 200).then_some(())
        },
    )
    .await;
    let num_exported_before_exit = receiver.spans_of_trace(&caller.trace_id).len();
    assert!(app.stop().success());

    // Assert
    assert_eq!(num_exported_before_exit, 0);
    let spans = receiver.spans_of_trace(&caller.trace_id);
    let trace = request_trace(&spans, &caller, false)
        .unwrap_or_else(|| panic!("an incomplete trace: {spans:#?}"));
    assert_request_trace(&trace, &caller);
    assert_eq!(trace.http.service_name, "ward");
    assert!(
        trace.grpc_opt.is_none(),
        "one process calls patients in-process"
    );
    let paths = receiver.paths.lock().unwrap().clone();
    assert!(paths.iter().all(|path| path == "/v1/traces"), "{paths:?}");
}

#[tokio::test]
async fn split_processes_export_one_trace_across_grpc_and_kafka() {
    // Arrange
    let receiver = OtlpReceiver::start();
    let cluster = TracedCluster::start(&receiver).await;
    let gateway = &cluster.nodes[3];
    let token = gateway.demo_token().await;
    let caller = CallerTrace::new();

    // Act
    send_traced_registration(gateway, &token, &caller).await;

    // Assert: the gateway -> gRPC -> patients -> Kafka -> billing and analytics, one trace.
    let trace = gateway
        .eventually(TRACE_WAIT, "the request's whole trace", || async {
            request_trace(&receiver.spans_of_trace(&caller.trace_id), &caller, true)
        })
        .await;
    assert_request_trace(&trace, &caller);
    assert_eq!(trace.http.service_name, "ward-gateway");
    let grpc = trace.grpc_opt.as_ref().unwrap();
    assert_eq!(grpc.service_name, "ward-patients");
    assert_eq!(grpc.name, CREATE_PATIENT);
    for (consumer, chain) in trace.consumers.iter().zip(&trace.consumer_ancestors) {
        assert_eq!(consumer.service_name, "ward-billing-analytics");
        assert_eq!(
            consumer.attribute("messaging.destination.name"),
            Some("ward.patients.v1")
        );
        // Produced inside the gRPC call, so its span is the event's ancestor.
        assert!(chain.contains(&grpc.span_id), "{consumer:?}");
    }
    let spans = receiver.spans_of_trace(&caller.trace_id);
    let grpc_chain = ancestors(&spans, grpc, &caller).expect("the gateway's spans arrived");
    assert!(
        grpc_chain
            .iter()
            .any(|span| span.span_id == trace.http.span_id)
    );
}

/// Registers a patient with the caller's `traceparent`; returns its id.
async fn send_traced_registration(app: &TestApp, token: &str, caller: &CallerTrace) -> String {
    let response = app
        .client
        .post(app.url("/api/patients"))
        .bearer_auth(token)
        .header("traceparent", caller.traceparent())
        .json(&patient_body(
            "Traced Patient",
            "traced.patient@example.com",
        ))
        .send()
        .await
        .unwrap();
    let created = json_of(response, 201).await;
    created["id"].as_str().unwrap().to_string()
}

/// Four processes on PostgreSQL and a tansu broker, every one exporting to `receiver`: auth
/// (with the demo user), patients, billing with analytics, and the gateway.
// Fields drop in order: processes first, then the broker, the databases, the folder.
struct TracedCluster {
    nodes: Vec<TestApp>,
    _broker: Broker,
    _databases: Databases,
    _dir: Workdir,
}

impl TracedCluster {
    async fn start(receiver: &OtlpReceiver) -> TracedCluster {
        let dir = Workdir::new();
        let databases = Databases::create().await;
        let broker = Broker::start(&dir.path);
        let mut env = vec![
            ("WARD_EVENTS__BACKEND".to_string(), "kafka".to_string()),
            ("WARD_EVENTS__BROKERS".to_string(), broker.address()),
            ("WARD_EVENTS__PARTITIONS".to_string(), "2".to_string()),
            (
                "WARD_TELEMETRY__OTLP_ENDPOINT".to_string(),
                receiver.endpoint(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "200".to_string()),
        ];
        for module in ["auth", "patients", "billing", "analytics"] {
            env.push((
                format!("WARD_DATABASE__{}", module.to_uppercase()),
                databases.url(module),
            ));
        }
        for args in [&["migrate"][..], &["keys", "generate"][..]] {
            let output = ward_command(&dir.path, args)
                .envs(env.clone())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "ward {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut nodes = Vec::new();
        let mut peers = Vec::new();
        for (roles, demo) in [
            ("auth", true),
            ("patients", false),
            ("billing,analytics", false),
        ] {
            let mut args = vec!["--roles", roles];
            if demo {
                args.push("--demo");
            }
            let node = TestApp::spawn_with_env(&dir.path, &args, &env).await;
            let grpc_url = format!("http://{}", node.grpc_addr_opt.unwrap());
            for role in roles.split(',') {
                peers.push((
                    format!("WARD_PEERS__{}", role.to_uppercase()),
                    grpc_url.clone(),
                ));
            }
            nodes.push(node);
        }
        env.extend(peers);
        nodes.push(TestApp::spawn_with_env(&dir.path, &["--roles", "gateway"], &env).await);
        TracedCluster {
            nodes,
            _broker: broker,
            _databases: databases,
            _dir: dir,
        }
    }
}
