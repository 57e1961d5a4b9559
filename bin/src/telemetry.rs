//! Tracing: human-readable in development, JSON for log pipelines; `RUST_LOG` wins over config.

use tracing_subscriber::EnvFilter;
use ward_core::config::{LogFormat, LogOptions};

/// Installs the global subscriber, writing to standard error.
pub fn init(options: &LogOptions) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&options.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match options.format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    if let Err(error) = result {
        eprintln!("ward: tracing was already initialised: {error}");
    }
}
