//! The request headers of `POST /api/patients`: `Idempotency-Key` (a retry answers the first
//! create) and `If-None-Exist` (FHIR's conditional create: answer the patient that matches
//! instead of creating one).

use actix_web::HttpRequest;
use ward_bus::patients::{IdempotencyKey, PatientSearch, PatientSearchInput};
use ward_core::{WardError, WardResult};

pub(crate) const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
pub(crate) const IF_NONE_EXIST_HEADER: &str = "If-None-Exist";

const IF_NONE_EXIST_MESSAGE: &str =
    "If-None-Exist must be identifier=<mrn> or email=<address>, one condition";

/// Reads `Idempotency-Key`: absent is `None`; one line of 1 to 255 printable ASCII characters
/// is the key; anything else is a 400 naming the header.
pub(crate) fn idempotency_key(request: &HttpRequest) -> WardResult<Option<IdempotencyKey>> {
    let Some(raw) = single_header(request, IDEMPOTENCY_KEY_HEADER)? else {
        return Ok(None);
    };
    IdempotencyKey::parse(raw).map(Some)
}

/// Reads `If-None-Exist` as the search that finds the existing patient: `identifier=<mrn>`
/// (exact medical record number) or `email=<address>` (ignoring case). Absent is `None`.
pub(crate) fn if_none_exist(request: &HttpRequest) -> WardResult<Option<PatientSearch>> {
    let Some(raw) = single_header(request, IF_NONE_EXIST_HEADER)? else {
        return Ok(None);
    };
    let Some((name, value)) = raw.trim().split_once('=') else {
        return Err(if_none_exist_invalid());
    };
    let value = value.trim();
    if value.is_empty() || value.contains('&') {
        return Err(if_none_exist_invalid());
    }
    let mut input = PatientSearchInput {
        limit_opt: Some(1),
        ..PatientSearchInput::default()
    };
    match name.trim() {
        "identifier" => input.identifier_opt = Some(value.to_string()),
        "email" => input.email_opt = Some(value.to_string()),
        _ => return Err(if_none_exist_invalid()),
    }
    // The search's own checks (length, control characters) apply; report them as the header.
    PatientSearch::parse(input)
        .map(Some)
        .map_err(|_| if_none_exist_invalid())
}

/// The header's one value as text; several lines or non-ASCII bytes are a 400 naming it.
fn single_header<'a>(request: &'a HttpRequest, name: &str) -> WardResult<Option<&'a str>> {
    let mut values = request.headers().get_all(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(WardError::invalid_field(
            name,
            format!("{name} must be sent once"),
        ));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| WardError::invalid_field(name, format!("{name} must be ASCII text")))
}

fn if_none_exist_invalid() -> WardError {
    WardError::invalid_field(IF_NONE_EXIST_HEADER, IF_NONE_EXIST_MESSAGE)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn idempotency_keys_are_read_and_checked() {
        let request = TestRequest::default()
            .insert_header((IDEMPOTENCY_KEY_HEADER, "abc-123"))
            .to_http_request();
        let key = idempotency_key(&request).unwrap().unwrap();
        assert_eq!(key.as_ref(), "abc-123");
        assert_eq!(
            idempotency_key(&TestRequest::default().to_http_request()).unwrap(),
            None
        );
        let too_long = TestRequest::default()
            .insert_header((IDEMPOTENCY_KEY_HEADER, "k".repeat(256)))
            .to_http_request();
        let error = idempotency_key(&too_long).unwrap_err();
        assert_eq!(error.field_errors()[0].field, IDEMPOTENCY_KEY_HEADER);
    }

    #[test]
    fn if_none_exist_takes_an_identifier_or_an_email() {
        let by_mrn = TestRequest::default()
            .insert_header((IF_NONE_EXIST_HEADER, "identifier=MRN-00000042"))
            .to_http_request();
        let search = if_none_exist(&by_mrn).unwrap().unwrap();
        assert_eq!(search.identifier_opt.as_deref(), Some("MRN-00000042"));
        let by_email = TestRequest::default()
            .insert_header((IF_NONE_EXIST_HEADER, "email=Ann@Example.com"))
            .to_http_request();
        assert!(
            if_none_exist(&by_email)
                .unwrap()
                .unwrap()
                .email_opt
                .is_some()
        );
        for bad in ["name=Ann", "identifier=", "identifier", "email=a&name=b"] {
            let request = TestRequest::default()
                .insert_header((IF_NONE_EXIST_HEADER, bad))
                .to_http_request();
            let error = if_none_exist(&request).unwrap_err();
            assert_eq!(error.field_errors()[0].field, IF_NONE_EXIST_HEADER, "{bad}");
        }
    }
}
