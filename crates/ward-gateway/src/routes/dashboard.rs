//! `/dashboard`: a self-contained page (HTML, script and styles compiled into the binary; no CDN,
//! clinics may be offline) that logs in and draws the analytics figures from this same API.

use actix_web::HttpResponse;
use actix_web::http::header;

const PAGE: &str = include_str!("../dashboard/index.html");
const SCRIPT: &str = include_str!("../dashboard/dashboard.js");
const STYLES: &str = include_str!("../dashboard/dashboard.css");

/// Only this origin's script and styles, no inline code, fetches to this origin only: an injected
/// `<script>` in any figure or patient name cannot run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

pub(crate) async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

pub(crate) async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(crate) async fn styles() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLES)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        // The assets change only with the binary; a short cache keeps upgrades visible.
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body)
}
