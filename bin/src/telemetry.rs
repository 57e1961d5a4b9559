//! Tracing: human-readable in development, JSON for log pipelines; `RUST_LOG` wins over config.
//! With `telemetry.otlp_endpoint` set, spans are also exported over OTLP/HTTP (protobuf), in
//! batches, and W3C trace context is propagated (see `ward_bus::trace_context`).

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};
use ward_core::Role;
use ward_core::config::{Config, LogFormat, LogOptions, TelemetryOptions};

/// How long one export to the collector may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long exit waits for the last spans to reach the collector.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The OTLP/HTTP path for traces under the collector's base URL.
const TRACES_PATH: &str = "/v1/traces";

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] sends what is still buffered.
pub struct Telemetry {
    provider_opt: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter, waiting at most
    /// [`SHUTDOWN_TIMEOUT`]; a collector that does not answer cannot hold up the exit.
    pub fn shutdown(self) {
        let Some(provider) = self.provider_opt else {
            return;
        };
        if let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            eprintln!("ward: the last spans may not have reached the collector: {error}");
        }
    }
}

/// Installs the global subscriber, writing to standard error, and the OTLP exporter when
/// `telemetry.otlp_endpoint` is set. Fails only when the exporter cannot be built.
pub fn init(config: &Config) -> Result<Telemetry, String> {
    let provider_opt = match &config.telemetry.otlp_endpoint {
        Some(endpoint) => Some(tracer_provider(&config.telemetry, endpoint, config)?),
        None => None,
    };
    let otel_layer_opt = provider_opt.as_ref().map(|provider| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("ward"))
            // Source locations and thread names are noise in a trace view; fields are kept.
            .with_location(false)
            .with_threads(false)
    });
    let result = Registry::default()
        .with(fmt_layer(&config.log))
        .with(otel_layer_opt)
        .with(filter(&config.log))
        .try_init();
    if let Err(error) = result {
        eprintln!("ward: tracing was already initialised: {error}");
    }
    Ok(Telemetry { provider_opt })
}

fn filter(options: &LogOptions) -> EnvFilter {
    // An empty RUST_LOG counts as unset: as a filter it would silence everything.
    let rust_log_opt = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty());
    rust_log_opt
        .and_then(|value| EnvFilter::try_new(value).ok())
        .or_else(|| EnvFilter::try_new(&options.filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

fn fmt_layer(options: &LogOptions) -> Box<dyn Layer<Registry> + Send + Sync> {
    let builder = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match options.format {
        LogFormat::Pretty => builder.with_target(false).boxed(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    }
}

/// The batch exporter to `endpoint`, sampling `sample_ratio` of new traces and following the
/// caller's decision for continued ones.
fn tracer_provider(
    options: &TelemetryOptions,
    endpoint: &str,
    config: &Config,
) -> Result<SdkTracerProvider, String> {
    let traces_url = traces_url(endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|error| format!("cannot export traces to {traces_url}: {error}"))?;
    let roles = config.roles.resolved();
    let role_names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
    let resource = Resource::builder()
        .with_service_name(service_name(&options.service_name, &roles))
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("ward.roles", role_names.join(",")),
        ])
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(options.sample_ratio)));
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

/// `service_name` for a process that runs every role, else suffixed with its roles
/// (`ward-gateway`, `ward-billing-analytics`): on ECS each role group is its own service, and
/// trace views group and draw their graphs by `service.name`. `ward.roles` lists them too.
fn service_name(base: &str, roles: &[Role]) -> String {
    if roles.len() == Role::ALL.len() {
        return base.to_string();
    }
    let mut name = base.to_string();
    for role in roles {
        name.push('-');
        name.push_str(role.as_str());
    }
    name
}

/// The collector's traces URL: `/v1/traces` under the base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT`
/// means it; a URL that already names the path is taken as it is.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        base.to_string()
    } else {
        format!("{base}{TRACES_PATH}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_process_is_named_after_its_roles() {
        assert_eq!(service_name("ward", &Role::ALL), "ward");
        assert_eq!(service_name("ward", &[Role::Gateway]), "ward-gateway");
        assert_eq!(
            service_name("clinic", &[Role::Billing, Role::Analytics]),
            "clinic-billing-analytics"
        );
    }

    #[test]
    fn spans_go_to_v1_traces_under_the_base_url() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.internal/otlp/"),
            "https://otel.internal/otlp/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
    }
}
