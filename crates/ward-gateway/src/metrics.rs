//! The few figures `/metrics` exposes, in the Prometheus text format, written by hand.
//!
//! The counters are process-wide because the public listener counts and the ops listener (a
//! separate `App`, often a separate port) reports.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::StatusCode;

/// The Prometheus text exposition format, version 0.0.4.
pub(crate) const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Responses served by the public listener, by status class (index 0 is 1xx).
static RESPONSES_BY_CLASS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Counts one response of the public listener.
pub(crate) fn count_response(status: StatusCode) {
    let class_index = usize::from(status.as_u16() / 100).saturating_sub(1);
    if let Some(counter) = RESPONSES_BY_CLASS.get(class_index) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Renders every figure.
pub(crate) fn render(ready: bool) -> String {
    let mut text = String::new();
    text.push_str(
        "# HELP ward_http_requests_total Responses sent by the public API, by status class.\n",
    );
    text.push_str("# TYPE ward_http_requests_total counter\n");
    for (class, counter) in STATUS_CLASSES.iter().zip(&RESPONSES_BY_CLASS) {
        let num_responses = counter.load(Ordering::Relaxed);
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "ward_http_requests_total{{status=\"{class}\"}} {num_responses}"
        );
    }
    text.push_str("# HELP ward_ready Whether this process is ready to serve (1) or not (0).\n");
    text.push_str("# TYPE ward_ready gauge\n");
    let _ = writeln!(text, "ward_ready {}", u8::from(ready));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_class() {
        let before = RESPONSES_BY_CLASS[3].load(Ordering::Relaxed);
        count_response(StatusCode::NOT_FOUND);
        let after = RESPONSES_BY_CLASS[3].load(Ordering::Relaxed);
        assert!(after > before);
        let text = render(false);
        assert!(text.contains("ward_http_requests_total{status=\"4xx\"} "));
        assert!(text.contains("\nward_ready 0\n"));
    }
}
