//! The FHIR request body: `application/fhir+json` (optionally `fhirVersion=4.0`) or plain
//! `application/json`, read as a JSON value within the gateway's body limit.

use actix_web::dev::Payload;
use actix_web::mime::Mime;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures::FutureExt;
use futures::future::{LocalBoxFuture, ready};
use serde_json::Value;

use super::{FHIR_CONTENT_TYPE, FhirError};
use crate::problem::ApiError;

/// The longest media type quoted back in a 415; the header is the caller's text.
const MEDIA_TYPE_ECHO_MAX_CHARS: usize = 100;

/// A FHIR JSON request body.
#[derive(Debug)]
pub(crate) struct FhirJson(pub Value);

impl FromRequest for FhirJson {
    type Error = FhirError;
    type Future = LocalBoxFuture<'static, Result<Self, FhirError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if let Err(error) = check_media_type(request.mime_type().ok().flatten()) {
            return ready(Err(error.into())).boxed_local();
        }
        // The gateway's `JsonConfig` applies the size limit and renders parse failures.
        web::Json::<Value>::from_request(request, payload)
            .map(|result| match result {
                Ok(json) => Ok(FhirJson(json.into_inner())),
                Err(error) => Err(FhirError::from(error)),
            })
            .boxed_local()
    }
}

/// Accepts `application/fhir+json` and `application/json`; a `fhirVersion` parameter, if sent,
/// must name R4 (4.0), since that is the only version served.
fn check_media_type(media_type_opt: Option<Mime>) -> Result<(), ApiError> {
    let unsupported = |found_opt: Option<String>| ApiError::UnsupportedMediaType {
        expected: FHIR_CONTENT_TYPE,
        found_opt,
    };
    let Some(media_type) = media_type_opt else {
        return Err(unsupported(None));
    };
    let essence = media_type.essence_str().to_ascii_lowercase();
    let is_fhir_json = essence == FHIR_CONTENT_TYPE || essence == "application/json";
    let mut is_r4 = true;
    for (name, value) in media_type.params() {
        if name.as_str().eq_ignore_ascii_case("fhirVersion") {
            is_r4 = value.as_str() == "4.0";
        }
    }
    if is_fhir_json && is_r4 {
        return Ok(());
    }
    let found: String = media_type
        .to_string()
        .chars()
        .take(MEDIA_TYPE_ECHO_MAX_CHARS)
        .collect();
    Err(unsupported(Some(found)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str) -> Result<(), ApiError> {
        check_media_type(Some(raw.parse().unwrap()))
    }

    #[test]
    fn fhir_json_and_plain_json_pass() {
        assert!(check("application/fhir+json").is_ok());
        assert!(check("application/fhir+json; fhirVersion=4.0").is_ok());
        assert!(check("application/json; charset=utf-8").is_ok());
    }

    #[test]
    fn other_types_and_versions_are_unsupported() {
        for raw in [
            "application/fhir+xml",
            "application/merge-patch+json",
            "text/plain",
            "application/fhir+json; fhirVersion=3.0",
        ] {
            assert!(check(raw).is_err(), "{raw}");
        }
        assert!(check_media_type(None).is_err());
    }
}
