//! Request ids and the middleware that tags, traces and counts every request.
//!
//! The id comes from the caller's `x-request-id` when it is usable, else it is a new UUID v7. It is
//! echoed on every response (errors and 404s included), carried by the request's tracing span,
//! written into problem documents, and passed to the bus in the [`ward_core::CallerContext`].

use std::fmt;
use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument;

/// The header a request id is read from and echoed in.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

const REQUEST_ID_MAX_CHARS: usize = 128;

/// The id that ties together a request's logs, its problem documents and its bus calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Accepts an id of 1 to 128 visible ASCII characters (no spaces or control characters, so
    /// it is safe in logs and headers).
    pub fn parse(raw: &str) -> Option<Self> {
        let is_right_length = (1..=REQUEST_ID_MAX_CHARS).contains(&raw.len());
        let is_visible_ascii = raw.bytes().all(|byte| byte.is_ascii_graphic());
        if is_right_length && is_visible_ascii {
            Some(Self(raw.to_string()))
        } else {
            None
        }
    }

    /// Returns a new time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Returns the caller's id from `headers` when usable, else a new one.
    pub fn from_headers_or_generate(headers: &HeaderMap) -> Self {
        let caller_id_opt = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(Self::parse);
        caller_id_opt.unwrap_or_else(Self::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Extracts the id the middleware assigned; outside the middleware (never in Ward's own
/// configuration) a fresh one.
impl FromRequest for RequestId {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Ok(request_id_of(request)))
    }
}

/// Returns the id the middleware stored in the request, or a new one.
pub(crate) fn request_id_of(request: &HttpRequest) -> RequestId {
    let stored_opt = request.extensions().get::<RequestId>().cloned();
    stored_opt.unwrap_or_else(RequestId::generate)
}

/// What error rendering needs to know about the request being served.
#[derive(Debug, Clone)]
pub(crate) struct RequestScope {
    pub request_id: String,
    pub path: String,
}

tokio::task_local! {
    static CURRENT_REQUEST: RequestScope;
}

/// Returns the scope of the request whose future is being polled, if any.
pub(crate) fn current_scope() -> Option<RequestScope> {
    CURRENT_REQUEST.try_with(RequestScope::clone).ok()
}

/// Which listener a request came in on: probes on the ops listener are logged at debug only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Api,
    Ops,
}

/// Middleware for the public listener: request id and tracing span.
pub(crate) async fn track_api_request<B: MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    track_request(request, next, Listener::Api).await
}

/// Middleware for the ops listener: request id and tracing span, logged at debug.
pub(crate) async fn track_ops_request<B: MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    track_request(request, next, Listener::Ops).await
}

async fn track_request<B: MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
    listener: Listener,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let request_id = RequestId::from_headers_or_generate(request.headers());
    request.extensions_mut().insert(request_id.clone());
    let scope = RequestScope {
        request_id: request_id.to_string(),
        path: request.path().to_string(),
    };
    // The route pattern, not the path, is recorded: paths carry patient ids. Probes get a
    // debug span, so they are neither logged nor exported as traces at the usual levels.
    let span = match listener {
        Listener::Api => tracing::info_span!(
            "http.request",
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            method = %request.method(),
            route = tracing::field::Empty,
            status = tracing::field::Empty,
        ),
        Listener::Ops => tracing::debug_span!(
            "http.request",
            request_id = %request_id,
            method = %request.method(),
            route = tracing::field::Empty,
            status = tracing::field::Empty,
        ),
    };
    // A caller's `traceparent` makes this request part of its trace.
    ward_bus::trace_context::set_parent_from_lookup(&span, |name| {
        request.headers().get(name)?.to_str().ok()
    });
    // No clone of the request may be held across the call: routing needs it uniquely owned.
    let outcome = CURRENT_REQUEST
        .scope(scope, next.call(request))
        .instrument(span.clone())
        .await;
    // Handlers and extractors turn their errors into responses, so an `Err` can only come from a
    // middleware below this one (there is none); it is passed on for actix to render.
    let mut response = outcome?.map_into_boxed_body();
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    let status = response.status();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    span.record("route", route.as_str());
    span.record("status", status.as_u16());
    let span_name = format!("{} {route}", response.request().method());
    ward_bus::trace_context::rename_span(&span, span_name);
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    let elapsed_millis = started.elapsed().as_millis() as u64;
    span.in_scope(|| match listener {
        Listener::Api => {
            tracing::info!(status = status.as_u16(), elapsed_millis, "request served");
        }
        Listener::Ops => {
            tracing::debug!(status = status.as_u16(), elapsed_millis, "request served");
        }
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_visible_ascii() {
        assert!(RequestId::parse("abc-123_XYZ:/.").is_some());
        assert!(RequestId::parse(&"a".repeat(128)).is_some());
        assert!(RequestId::parse(&"a".repeat(129)).is_none());
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse("has space").is_none());
        assert!(RequestId::parse("tab\there").is_none());
        assert!(RequestId::parse("é").is_none());
    }

    #[test]
    fn a_missing_or_bad_header_gets_a_uuid_v7() {
        let mut headers = HeaderMap::new();
        let generated = RequestId::from_headers_or_generate(&headers);
        let parsed = uuid::Uuid::parse_str(generated.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        headers.insert(
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderValue::from_static("from-the-caller"),
        );
        let echoed = RequestId::from_headers_or_generate(&headers);
        assert_eq!(echoed.as_str(), "from-the-caller");
    }
}
