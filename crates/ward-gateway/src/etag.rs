//! Record versions over HTTP: the `ETag` a patient response carries (`W/"<version>"`) and the
//! `If-Match` a write may send to be applied only to the version the client saw.
//!
//! The tag is weak: it names a version of the record, not the bytes of one rendering. RFC 9110
//! says `If-Match` compares strongly; Ward accepts the weak tag it hands out (and its strong
//! spelling) because the version is the whole identity of the state being changed.
//!
//! When configured (`patients.require_if_match`), a write without `If-Match` is refused with
//! 428 Precondition Required (RFC 6585). The [`IfMatch`] extractor enforces it, so every route
//! that takes one (the patient `PUT`, `PATCH`, `DELETE` and restore, REST and FHIR) follows the
//! same rule, and no route can forget it.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use ward_core::{WardError, WardResult};

use crate::problem::ApiError;

/// The longest version number, in digits, a tag may carry (`u32::MAX` has 10).
const VERSION_MAX_DIGITS: usize = 10;

const IF_MATCH_MESSAGE: &str =
    r#"If-Match must be *, "<version>" or W/"<version>", with one version"#;

/// The 428 detail when `If-Match` is required and absent.
pub(crate) const IF_MATCH_REQUIRED_MESSAGE: &str = "this server requires If-Match on changes of \
    a patient: send the ETag of the version you read (W/\"<version>\"), or * for any version";

/// Returns the `ETag` value of a record at `version`.
pub(crate) fn etag(version: u32) -> String {
    format!("W/\"{version}\"")
}

/// Whether writes must carry `If-Match`; app data of the API scope (absent means not required).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IfMatchPolicy {
    pub(crate) is_required: bool,
}

/// The `If-Match` request header, as the version a write expects: `None` when absent or `*`
/// (any current version: the write then only needs the record to exist). Extracting it fails
/// with 428 when the header is absent and [`IfMatchPolicy`] requires it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IfMatch(Option<u32>);

impl IfMatch {
    pub(crate) fn expected_version_opt(self) -> Option<u32> {
        self.0
    }
}

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let mut values = Vec::new();
        for value in request.headers().get_all(header::IF_MATCH) {
            // Not visible ASCII: cannot be a tag Ward handed out.
            match value.to_str() {
                Ok(text) => values.push(text),
                Err(_) => return ready(Err(if_match_invalid().into())),
            }
        }
        let policy_opt = request.app_data::<web::Data<IfMatchPolicy>>();
        let is_required = match policy_opt {
            Some(policy) => policy.is_required,
            None => false,
        };
        if is_required && values.is_empty() {
            let error = WardError::PreconditionRequired(IF_MATCH_REQUIRED_MESSAGE.to_string());
            return ready(Err(error.into()));
        }
        ready(parse_if_match(&values).map(IfMatch).map_err(ApiError::from))
    }
}

/// Reads the `If-Match` header lines: none or `*` is `None`, one version tag is that version.
/// A list of several tags is refused too: a write expects exactly one version.
fn parse_if_match(values: &[&str]) -> WardResult<Option<u32>> {
    let raw = match values {
        [] => return Ok(None),
        [raw] => raw.trim(),
        _ => return Err(if_match_invalid()),
    };
    if raw == "*" {
        return Ok(None);
    }
    let opaque = raw.strip_prefix("W/").unwrap_or(raw);
    let Some(digits) = opaque
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return Err(if_match_invalid());
    };
    // Digits only: `u32::from_str` would also take a leading `+`.
    let is_number = !digits.is_empty()
        && digits.len() <= VERSION_MAX_DIGITS
        && digits.bytes().all(|byte| byte.is_ascii_digit());
    if !is_number {
        return Err(if_match_invalid());
    }
    match digits.parse::<u32>() {
        Ok(version) => Ok(Some(version)),
        Err(_) => Err(if_match_invalid()),
    }
}

fn if_match_invalid() -> WardError {
    WardError::invalid_field("If-Match", IF_MATCH_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_strong_and_wildcard_tags_are_read() {
        assert_eq!(parse_if_match(&[]), Ok(None));
        assert_eq!(parse_if_match(&["*"]), Ok(None));
        assert_eq!(parse_if_match(&[r#"W/"3""#]), Ok(Some(3)));
        assert_eq!(parse_if_match(&[r#""3""#]), Ok(Some(3)));
        assert_eq!(parse_if_match(&[r#" "4294967295" "#]), Ok(Some(u32::MAX)));
        assert_eq!(parse_if_match(&[&etag(7)]), Ok(Some(7)));
    }

    #[test]
    fn anything_else_is_a_400_naming_the_header() {
        for raw in [
            "3",
            r#""""#,
            r#""+3""#,
            r#""abc""#,
            r#"w/"3""#,
            r#"W/"3"#,
            r#""4294967296""#,
            r#""1", "2""#,
            "**",
        ] {
            let error = parse_if_match(&[raw]).unwrap_err();
            assert_eq!(error.field_errors()[0].field, "If-Match", "{raw}");
        }
        assert!(parse_if_match(&[r#""1""#, r#""2""#]).is_err());
    }
}
