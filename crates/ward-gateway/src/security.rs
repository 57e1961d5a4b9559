//! Security headers and the CORS allow-list of the public listener.
//!
//! Every response gets `nosniff`, `DENY` framing and `no-referrer`; `/api/**` and `/auth/**`
//! responses carry patient data or tokens and are never cached; JSON responses get a CSP that
//! forbids everything (the `/docs` page sets its own). CORS is hand-written: browsers from a
//! configured origin may call the API with a bearer token (no cookies, so no credentials mode);
//! with no origins configured no CORS header is ever sent.

use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};

/// Options of the public listener that come from configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayOptions {
    /// Browser origins (`scheme://host[:port]`) allowed to call the API cross-origin. Empty means
    /// no CORS headers at all, so browsers keep the same-origin policy.
    pub cors_allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` names the client (`server.trusted_proxies`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Patient changes without `If-Match` answer 428 (`patients.require_if_match`).
    pub require_if_match: bool,
}

const JSON_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";
const CORS_ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
// The conditional and idempotent write headers too: a browser client must be able to send
// them (and read the `ETag`) when writes require `If-Match`.
const CORS_ALLOWED_HEADERS: &str =
    "authorization, content-type, x-request-id, if-match, if-none-exist, idempotency-key";
const CORS_EXPOSED_HEADERS: &str = "x-request-id, location, etag";
const CORS_MAX_AGE_SECS: &str = "600";

/// The allow-list, normalized once (no trailing slash; compared ignoring ASCII case, as scheme and
/// host are case-insensitive).
#[derive(Debug, Clone, Default)]
pub(crate) struct CorsPolicy {
    allowed_origins: Arc<[String]>,
}

impl CorsPolicy {
    pub(crate) fn new(options: &GatewayOptions) -> Self {
        let allowed_origins: Vec<String> = options
            .cors_allowed_origins
            .iter()
            .map(|origin| origin.trim_end_matches('/').to_string())
            .collect();
        Self {
            allowed_origins: allowed_origins.into(),
        }
    }

    fn is_enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    /// Returns the request's `Origin` when it is on the list.
    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let origin_text = origin.to_str().ok()?;
        let is_allowed = self
            .allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin_text));
        is_allowed.then(|| origin.clone())
    }
}

/// Middleware: answers allowed CORS preflights, and adds the security and CORS headers to every
/// other response (errors and 404s included, since they are responses by the time they get here).
pub(crate) async fn secure_response(
    policy: CorsPolicy,
    request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let is_private_path = is_private_path(request.path());
    let allowed_origin_opt = policy.allowed_origin(request.headers());
    let is_preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = match (&allowed_origin_opt, is_preflight) {
        (Some(origin), true) => {
            let preflight = preflight_response(origin.clone());
            request.into_response(preflight)
        }
        // Unlisted origins' preflights reach routing like any OPTIONS request (a 405 problem)
        // and get no allow headers, so the browser refuses the call.
        _ => next.call(request).await?,
    };
    let headers = response.headers_mut();
    add_security_headers(headers, is_private_path);
    if policy.is_enabled() {
        // Caches must key on Origin whenever the answer may depend on it.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if let Some(origin) = allowed_origin_opt
        && !is_preflight
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(CORS_EXPOSED_HEADERS),
        );
    }
    Ok(response)
}

fn preflight_response(origin: HeaderValue) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, CORS_ALLOWED_METHODS))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, CORS_ALLOWED_HEADERS))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, CORS_MAX_AGE_SECS))
        .finish()
}

/// `/api/**` and `/auth/**` answer with patient data or tokens.
fn is_private_path(path: &str) -> bool {
    ["/api", "/auth"].iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn add_security_headers(headers: &mut HeaderMap, is_private_path: bool) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if is_private_path {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_json_content_type);
    if is_json && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(JSON_CONTENT_SECURITY_POLICY),
        );
    }
}

/// `application/json` and `application/*+json` (problem documents), parameters ignored.
fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_paths_are_the_api_and_auth_trees_only() {
        assert!(is_private_path("/api/patients"));
        assert!(is_private_path("/auth/login"));
        assert!(is_private_path("/api"));
        assert!(!is_private_path("/apix"));
        assert!(!is_private_path("/docs"));
        assert!(!is_private_path("/livez"));
    }

    #[test]
    fn json_and_problem_types_are_json() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("application/problem+json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(!is_json_content_type("text/html; charset=utf-8"));
    }

    #[test]
    fn origins_match_exactly_ignoring_case_and_a_trailing_slash() {
        let policy = CorsPolicy::new(&GatewayOptions {
            trusted_proxies: Vec::new(),
            cors_allowed_origins: vec!["https://Clinic.example/".into()],
            require_if_match: false,
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://clinic.example"),
        );
        assert!(policy.allowed_origin(&headers).is_some());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://clinic.example.evil"),
        );
        assert!(policy.allowed_origin(&headers).is_none());
    }
}
