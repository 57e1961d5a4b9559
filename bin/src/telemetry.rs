//! Tracing: human-readable in development, JSON for log pipelines; `RUST_LOG` wins over config.

use tracing_subscriber::EnvFilter;
use ward_core::config::{LogFormat, LogOptions};

/// Installs the global subscriber, writing to standard error.
pub fn init(options: &LogOptions) {
    // An empty RUST_LOG counts as unset: as a filter it would silence everything.
    let rust_log_opt = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty());
    let filter = rust_log_opt
        .and_then(|value| EnvFilter::try_new(value).ok())
        .or_else(|| EnvFilter::try_new(&options.filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
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
