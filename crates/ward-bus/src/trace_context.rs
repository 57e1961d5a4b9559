//! W3C trace context (`traceparent`, `tracestate`) across Ward's hops: HTTP into the gateway,
//! gRPC between processes, and the event envelope through the outbox and the log.
//!
//! Everything here goes through OpenTelemetry's global propagator and the OpenTelemetry context
//! of the current `tracing` span. The binary installs both only when `telemetry.otlp_endpoint` is
//! set; until then the propagator is a no-op and spans carry no context, so these functions
//! neither write nor read anything (and cost a lookup).

use std::collections::HashMap;
use std::marker::PhantomData;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tonic::codegen::http;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use ward_proto::v1::EventEnvelope;

use crate::events::LogRecord;

/// The gRPC paths whose calls get no span: probes and tooling, not requests (a health check
/// every few seconds per peer would bury the traces that matter).
const UNTRACED_GRPC_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Writes the current span's trace context into `carrier` (`traceparent`, and `tracestate`
/// when there is one); writes nothing when the span is not traced.
pub fn inject_current(carrier: &mut HashMap<String, String>) {
    inject(&Span::current().context(), carrier);
}

/// Makes the context that `carrier` holds (a caller's `traceparent`) the parent of `span`;
/// does nothing when it holds none or telemetry is off. `span` must be new (not yet entered).
pub fn set_parent_from(span: &Span, carrier: &dyn Extractor) {
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(carrier));
    if !parent.span().span_context().is_valid() {
        return;
    }
    if let Err(error) = span.set_parent(parent) {
        tracing::debug!(%error, "cannot continue the caller's trace");
    }
}

/// Like [`set_parent_from`], reading the caller's fields (HTTP headers) through `lookup`.
pub fn set_parent_from_lookup<'a>(span: &Span, lookup: impl Fn(&str) -> Option<&'a str>) {
    set_parent_from(span, &LookupExtractor(lookup, PhantomData));
}

/// Renames `span` in its trace (a server span is named `POST /api/patients` once the route is
/// known); `otel.name` recorded after the span started would not be.
pub fn rename_span(span: &Span, name: String) {
    span.context().span().update_name(name);
}

/// Adds the current span's trace context to outgoing gRPC metadata.
pub fn inject_into_metadata(metadata: &mut MetadataMap) {
    inject(&Span::current().context(), &mut MetadataInjector(metadata));
}

/// Returns the span a gRPC call is served in (for tonic's `Server::trace_fn`): a child of the
/// caller's span when the call carries a `traceparent`. Health checks and reflection get none.
pub fn grpc_server_span(request: &http::Request<()>) -> Span {
    let path = request.uri().path();
    let is_untraced = UNTRACED_GRPC_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix));
    if is_untraced {
        return Span::none();
    }
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = path,
    );
    set_parent_from(&span, &HeaderExtractor(request.headers()));
    span
}

/// Returns the span `consumer` handles one event in: a child of the span that produced the
/// event when its envelope carries a trace context, so one trace runs from the request through
/// the log to every consumer.
pub fn event_span(consumer: &str, record: &LogRecord, envelope: &EventEnvelope) -> Span {
    // "PatientRegistered process" in the messaging conventions' words; the consumer is a field.
    let name = format!("{} process", envelope.event_type);
    let span = tracing::info_span!(
        "event.handle",
        otel.name = name.as_str(),
        otel.kind = "consumer",
        consumer,
        event_type = %envelope.event_type,
        event_id = %envelope.event_id,
        messaging.destination.name = %record.topic,
        partition = record.partition,
        offset = record.offset,
    );
    set_parent_from(&span, &envelope.trace_context);
    span
}

fn inject(context: &opentelemetry::Context, injector: &mut dyn Injector) {
    if !context.span().span_context().is_valid() {
        return;
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(context, injector);
    });
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let key_result = MetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes());
        if let (Ok(key), Ok(value)) = (key_result, MetadataValue::try_from(value)) {
            self.0.insert(key, value);
        }
    }
}

/// The fields the W3C propagator reads.
const TRACE_CONTEXT_FIELDS: [&str; 2] = ["traceparent", "tracestate"];

/// Names the lifetime of what `F` returns, so a borrow of the extractor cannot outlive it.
struct LookupExtractor<'a, F>(F, PhantomData<&'a str>);

impl<'a, F: Fn(&str) -> Option<&'a str>> Extractor for LookupExtractor<'a, F> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }

    fn keys(&self) -> Vec<&str> {
        TRACE_CONTEXT_FIELDS
            .into_iter()
            .filter(|field| (self.0)(field).is_some())
            .collect()
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceId, TracerProvider as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::subscriber::DefaultGuard;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// Installs, for this thread, what the binary installs when telemetry is on.
    fn traced() -> DefaultGuard {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        tracing::subscriber::set_default(tracing_subscriber::registry().with(layer))
    }

    fn caller_carrier() -> HashMap<String, String> {
        HashMap::from([("traceparent".to_string(), TRACEPARENT.to_string())])
    }

    fn span_context_of(span: &Span) -> SpanContext {
        span.context().span().span_context().clone()
    }

    fn caller_trace_id() -> TraceId {
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    }

    #[test]
    fn a_span_continues_the_callers_trace() {
        let _guard = traced();
        let span = tracing::info_span!("request");
        set_parent_from(&span, &caller_carrier());
        let context = span_context_of(&span);
        assert_eq!(context.trace_id(), caller_trace_id());
        assert_ne!(
            context.span_id(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );

        let mut carrier = HashMap::new();
        span.in_scope(|| inject_current(&mut carrier));
        let traceparent = &carrier["traceparent"];
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{traceparent}"
        );
        assert!(traceparent.ends_with(&format!("-{}-01", context.span_id())));
    }

    #[test]
    fn grpc_metadata_carries_the_trace_to_the_server_span() {
        let _guard = traced();
        let client_span = tracing::info_span!("client");
        set_parent_from(&client_span, &caller_carrier());
        let mut metadata = MetadataMap::new();
        client_span.in_scope(|| inject_into_metadata(&mut metadata));

        let mut request = http::Request::builder()
            .uri("http://patients:50051/ward.v1.PatientService/CreatePatient")
            .body(())
            .unwrap();
        *request.headers_mut() = metadata.into_headers();
        let server_span = grpc_server_span(&request);

        assert_eq!(span_context_of(&server_span).trace_id(), caller_trace_id());
        let health = http::Request::builder()
            .uri("http://patients:50051/grpc.health.v1.Health/Check")
            .body(())
            .unwrap();
        assert!(grpc_server_span(&health).is_none());
    }

    #[test]
    fn an_events_trace_survives_the_envelopes_bytes_to_its_consumer() {
        let _guard = traced();
        let request_span = tracing::info_span!("request");
        set_parent_from(&request_span, &caller_carrier());
        let subject = uuid::Uuid::now_v7();
        let payload = crate::events::PatientDeleted {
            patient_id: subject.to_string(),
            version: 1,
        };
        let sent = request_span.in_scope(|| {
            crate::events::envelope("patients", subject, "req-1", chrono::Utc::now(), &payload)
        });

        let bytes = crate::events::encode_envelope(&sent);
        let received = crate::events::decode_envelope(&bytes).unwrap();
        let record = LogRecord {
            topic: "ward.patients.v1".into(),
            partition: 0,
            offset: 7,
            key: subject.to_string(),
            value: bytes,
        };
        let consumer_span = event_span("billing", &record, &received);

        let request_context = span_context_of(&request_span);
        let expected = format!(
            "00-{}-{}-01",
            request_context.trace_id(),
            request_context.span_id()
        );
        assert_eq!(received.trace_context["traceparent"], expected);
        assert_eq!(received.trace_context["x-request-id"], "req-1");
        let consumer_context = span_context_of(&consumer_span);
        assert_eq!(consumer_context.trace_id(), caller_trace_id());
        assert_ne!(consumer_context.span_id(), request_context.span_id());
    }

    #[test]
    fn nothing_is_written_or_read_without_telemetry() {
        let span = tracing::info_span!("request");
        set_parent_from(&span, &caller_carrier());
        let mut carrier = HashMap::new();
        span.in_scope(|| inject_current(&mut carrier));
        assert!(carrier.is_empty());
    }
}
