//! `GET /fhir/Patient/$export`: every live patient as FHIR NDJSON (`application/fhir+ndjson`),
//! streamed page by page so the table is never held in memory; `_since` keeps those changed at
//! or after an instant. Admins only.
//!
//! This is the streaming flavour of the FHIR Bulk Data export: the answer is the file itself
//! rather than a kick-off, a status URL to poll and links to download.

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use futures::stream;
use ward_bus::patients::{PAGE_MAX, PageRequest, PatientPage};
use ward_core::{CallerContext, Right, WardError, WardResult};

use super::FhirError;
use super::bulk::bulk_patient_resource;
use crate::ApiBackends;
use crate::caller::Caller;
use crate::problem::ApiError;

/// The media type of the answer.
pub(crate) const FHIR_NDJSON_CONTENT_TYPE: &str = "application/fhir+ndjson";

/// Where the stream stands: the page read but not yet sent, and whether another follows.
struct ExportState {
    backends: web::Data<ApiBackends>,
    ctx: CallerContext,
    since_opt: Option<DateTime<Utc>>,
    page_opt: Option<PatientPage>,
    /// Set when reading the next page failed: the stream ends with an error after the page in
    /// hand is sent.
    failed: bool,
}

/// `GET /fhir/Patient/$export[?_since=instant]`.
#[tracing::instrument(name = "gateway.fhir.export_patients", skip_all)]
pub(crate) async fn export_patients(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller_result: Result<Caller, ApiError>,
) -> Result<HttpResponse, FhirError> {
    let caller = caller_result?;
    // Every record at once is an administrator's operation, whatever patients:read allows.
    caller.context().require(Right::UsersAdmin)?;
    let since_opt = parse_since(request.query_string())?;
    // The first page is read before answering, so that a refusal or an unavailable module is a
    // proper error status rather than a 200 that stops short.
    let first = backends
        .patients
        .export_patients(caller.context(), since_opt, first_page())
        .await?;
    let state = ExportState {
        backends,
        ctx: caller.context().clone(),
        since_opt,
        page_opt: Some(first),
        failed: false,
    };
    let body = stream::unfold(state, next_chunk);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, FHIR_NDJSON_CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .streaming(body))
}

fn first_page() -> PageRequest {
    PageRequest {
        limit: PAGE_MAX,
        after_opt: None,
    }
}

/// Sends the page in hand and reads the next one. A failure past the first page can no longer
/// change the status: the stream ends with an error, so the client sees a broken transfer
/// rather than a file that silently stops.
async fn next_chunk(
    mut state: ExportState,
) -> Option<(Result<Bytes, std::io::Error>, ExportState)> {
    if state.failed {
        state.failed = false;
        let failure = std::io::Error::other("the export stopped early");
        return Some((Err(failure), state));
    }
    let page = state.page_opt.take()?;
    let mut chunk = String::new();
    for patient in &page.items {
        chunk.push_str(&bulk_patient_resource(patient).to_string());
        chunk.push('\n');
    }
    if let Some(cursor) = &page.next_cursor_opt {
        let next = match PageRequest::parse(Some(i64::from(PAGE_MAX)), Some(cursor)) {
            Ok(request) => {
                state
                    .backends
                    .patients
                    .export_patients(&state.ctx, state.since_opt, request)
                    .await
            }
            Err(error) => Err(error),
        };
        match next {
            Ok(next_page) => state.page_opt = Some(next_page),
            Err(error) => {
                tracing::error!(%error, "the patient export stopped early");
                state.failed = true;
            }
        }
    }
    Some((Ok(Bytes::from(chunk)), state))
}

/// Reads the query: `_since` (an instant with a time zone), nothing else.
fn parse_since(query: &str) -> WardResult<Option<DateTime<Utc>>> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|error| WardError::invalid(format!("invalid query string: {error}"), Vec::new()))?
        .into_inner();
    let mut since_opt = None;
    for (name, value) in pairs {
        if name != "_since" {
            let shown: String = name.chars().take(100).collect();
            return Err(WardError::invalid_field(
                &shown,
                format!("unknown parameter {shown}; $export takes only _since"),
            ));
        }
        if since_opt.is_some() {
            return Err(WardError::invalid_field(
                "_since",
                "_since may be given only once",
            ));
        }
        let since = DateTime::parse_from_rfc3339(value.trim()).map_err(|_| {
            WardError::invalid_field(
                "_since",
                "_since must be an instant such as 2024-01-01T00:00:00Z",
            )
        })?;
        since_opt = Some(since.with_timezone(&Utc));
    }
    Ok(since_opt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_well_formed_since_is_accepted() {
        assert_eq!(parse_since("").unwrap(), None);
        let since = parse_since("_since=2024-01-02T03:04:05%2B01:00")
            .unwrap()
            .unwrap();
        assert_eq!(since.to_rfc3339(), "2024-01-02T02:04:05+00:00");
        for bad in [
            "_since=yesterday",
            "_since=2024-01-02",
            "_type=Patient",
            "_since=2024-01-02T03:04:05Z&_since=2024-01-02T03:04:05Z",
        ] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
