//! The request headers of `POST /api/patients` and `POST /fhir/Patient`: `Idempotency-Key` (a
//! retry answers the first create) and `If-None-Exist` (FHIR's conditional create: answer the
//! patient that matches instead of creating one).

use actix_web::HttpRequest;
use percent_encoding::percent_decode_str;
use ward_bus::patients::{IdempotencyKey, PatientSearch, PatientSearchInput};
use ward_core::{WardError, WardResult};

use crate::identifier::identifier_token;

pub(crate) const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
pub(crate) const IF_NONE_EXIST_HEADER: &str = "If-None-Exist";

const IF_NONE_EXIST_MESSAGE: &str = "If-None-Exist must be identifier=[urn:ward:mrn|]<mrn> or \
    email=<address>, one condition";

/// Reads `Idempotency-Key`: absent is `None`; one line of 1 to 255 printable ASCII characters
/// is the key; anything else is a 400 naming the header.
pub(crate) fn idempotency_key(request: &HttpRequest) -> WardResult<Option<IdempotencyKey>> {
    let Some(raw) = single_header(request, IDEMPOTENCY_KEY_HEADER)? else {
        return Ok(None);
    };
    IdempotencyKey::parse(raw).map(Some)
}

/// Reads `If-None-Exist` as the search that finds the existing patient: `identifier=<mrn>`
/// (exact medical record number, optionally as the FHIR token `urn:ward:mrn|<mrn>`) or
/// `email=<address>` (ignoring case). The value is a query-string value, so `%XX` escapes are
/// decoded; `+` stays a plus (email addresses hold them). Absent is `None`.
///
/// The search asks for two patients, so that a condition matching several can be told from one
/// matching exactly one.
pub(crate) fn if_none_exist(request: &HttpRequest) -> WardResult<Option<PatientSearch>> {
    let Some(raw) = single_header(request, IF_NONE_EXIST_HEADER)? else {
        return Ok(None);
    };
    let Some((name, raw_value)) = raw.trim().split_once('=') else {
        return Err(if_none_exist_invalid());
    };
    if raw_value.contains('&') {
        return Err(if_none_exist_invalid());
    }
    let Ok(decoded) = percent_decode_str(raw_value).decode_utf8() else {
        return Err(if_none_exist_invalid());
    };
    let value = decoded.trim();
    if value.is_empty() {
        return Err(if_none_exist_invalid());
    }
    let mut input = PatientSearchInput {
        limit_opt: Some(2),
        ..PatientSearchInput::default()
    };
    match name.trim() {
        "identifier" => match identifier_token(value) {
            Ok(Some(token)) => input.identifier_opt = Some(token),
            Ok(None) => return Err(if_none_exist_invalid()),
            Err(message) => {
                return Err(WardError::invalid_field(IF_NONE_EXIST_HEADER, message));
            }
        },
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
        let email_search = if_none_exist(&by_email).unwrap().unwrap();
        assert_eq!(email_search.email_opt.as_deref(), Some("ann@example.com"));
        assert_eq!(search.limit, 2);
        let by_token = TestRequest::default()
            .insert_header((IF_NONE_EXIST_HEADER, "identifier=urn%3Award%3Amrn%7CMRN-7"))
            .to_http_request();
        let token_search = if_none_exist(&by_token).unwrap().unwrap();
        assert_eq!(
            token_search.identifier_opt.as_deref(),
            Some("urn:ward:mrn|MRN-7")
        );
        let with_plus = TestRequest::default()
            .insert_header((IF_NONE_EXIST_HEADER, "email=ann+ward@example.com"))
            .to_http_request();
        let plus_search = if_none_exist(&with_plus).unwrap().unwrap();
        assert_eq!(
            plus_search.email_opt.as_deref(),
            Some("ann+ward@example.com")
        );
        for bad in [
            "name=Ann",
            "identifier=",
            "identifier",
            "email=a&name=b",
            "identifier=urn:ward:mrn|",
            "email=%FF",
        ] {
            let request = TestRequest::default()
                .insert_header((IF_NONE_EXIST_HEADER, bad))
                .to_http_request();
            let error = if_none_exist(&request).unwrap_err();
            assert_eq!(error.field_errors()[0].field, IF_NONE_EXIST_HEADER, "{bad}");
        }
    }
}
