//! `/openapi.json` and `/docs`, a self-contained page that renders it (no CDN: clinics may be
//! offline).

use std::sync::LazyLock;

use actix_web::HttpResponse;
use actix_web::http::header;

use crate::openapi::openapi;

const DOCS_PAGE: &str = include_str!("../docs.html");

/// The page may run only its own inline script and style, and fetch only from this origin.
const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

/// Generated once: the description only changes with the code.
static OPENAPI: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(openapi);

/// The OpenAPI 3.1 description of this API.
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(&*OPENAPI)
}

/// A readable rendering of `/openapi.json`.
pub(crate) async fn docs_page() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            DOCS_CONTENT_SECURITY_POLICY,
        ))
        .body(DOCS_PAGE)
}
