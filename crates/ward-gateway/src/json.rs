//! The JSON body extractors every body-carrying route uses: [`ApiJson`], and [`MergePatchJson`]
//! for RFC 7396 merge patches.
//!
//! actix's own `web::Json` answers a wrong content type with the generic extractor error (which
//! Ward used to render as a 400) and accepts any `*/json`. [`ApiJson`] first checks the media type
//! strictly, so a form post or a missing `Content-Type` is a 415 problem, then delegates reading,
//! the size limit and parsing to `web::Json` and the gateway's `JsonConfig`.

use actix_web::dev::Payload;
use actix_web::mime::{self, Mime};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures::FutureExt;
use futures::future::{LocalBoxFuture, ready};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// The longest media type quoted back in a 415 problem; the header is the caller's text.
const MEDIA_TYPE_ECHO_MAX_CHARS: usize = 100;

/// The media type a 415 asks for on routes that read plain JSON.
pub(crate) const JSON_MEDIA_TYPE: &str = "application/json";

/// The media type of an RFC 7396 merge patch, the only one [`MergePatchJson`] reads.
pub(crate) const MERGE_PATCH_MEDIA_TYPE: &str = "application/merge-patch+json";

/// A JSON request body, sent as `application/json` or `application/*+json`.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

impl<T> ApiJson<T> {
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if let Err(error) = check_media_type(request.mime_type(), is_json, JSON_MEDIA_TYPE) {
            return ready(Err(error.into())).boxed_local();
        }
        web::Json::<T>::from_request(request, payload)
            .map(|result| result.map(|json| ApiJson(json.into_inner())))
            .boxed_local()
    }
}

/// A JSON request body sent as `application/merge-patch+json` (RFC 7396): a merge patch means
/// something else than a full document, so plain `application/json` is a 415 here.
#[derive(Debug)]
pub(crate) struct MergePatchJson<T>(pub T);

impl<T> MergePatchJson<T> {
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for MergePatchJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = check_media_type(request.mime_type(), is_merge_patch, MERGE_PATCH_MEDIA_TYPE);
        if let Err(error) = checked {
            return ready(Err(error.into())).boxed_local();
        }
        web::Json::<T>::from_request(request, payload)
            .map(|result| result.map(|json| MergePatchJson(json.into_inner())))
            .boxed_local()
    }
}

/// Accepts a media type `accepts` approves, with any parameters; a 415 asks for `expected`.
fn check_media_type<E>(
    parsed: Result<Option<Mime>, E>,
    accepts: fn(&Mime) -> bool,
    expected: &'static str,
) -> Result<(), ApiError> {
    match parsed {
        Ok(Some(media_type)) if accepts(&media_type) => Ok(()),
        Ok(Some(media_type)) => Err(ApiError::UnsupportedMediaType {
            expected,
            found_opt: Some(
                media_type
                    .essence_str()
                    .chars()
                    .take(MEDIA_TYPE_ECHO_MAX_CHARS)
                    .collect(),
            ),
        }),
        // Missing and unparseable headers are both "not declared as JSON".
        Ok(None) | Err(_) => Err(ApiError::UnsupportedMediaType {
            expected,
            found_opt: None,
        }),
    }
}

fn is_merge_patch(media_type: &Mime) -> bool {
    media_type.essence_str() == MERGE_PATCH_MEDIA_TYPE
}

fn is_json(media_type: &Mime) -> bool {
    media_type.type_() == mime::APPLICATION
        && (media_type.subtype() == mime::JSON || media_type.suffix() == Some(mime::JSON))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str) -> Result<(), ApiError> {
        check_media_type::<()>(Ok(Some(raw.parse().unwrap())), is_json, JSON_MEDIA_TYPE)
    }

    #[test]
    fn json_and_json_suffixed_application_types_pass() {
        assert!(check("application/json").is_ok());
        assert!(check("application/json; charset=utf-8").is_ok());
        assert!(check("application/merge-patch+json").is_ok());
    }

    #[test]
    fn other_types_are_unsupported_and_quoted() {
        for raw in [
            "text/plain",
            "text/json",
            "application/x-www-form-urlencoded",
        ] {
            let Err(ApiError::UnsupportedMediaType { found_opt, .. }) = check(raw) else {
                panic!("{raw} accepted");
            };
            assert_eq!(found_opt.as_deref(), Some(raw));
        }
        assert!(matches!(
            check_media_type::<()>(Ok(None), is_json, JSON_MEDIA_TYPE),
            Err(ApiError::UnsupportedMediaType {
                found_opt: None,
                ..
            })
        ));
    }

    #[test]
    fn a_merge_patch_must_say_so() {
        let check_patch = |raw: &str| {
            check_media_type::<()>(
                Ok(Some(raw.parse().unwrap())),
                is_merge_patch,
                MERGE_PATCH_MEDIA_TYPE,
            )
        };
        assert!(check_patch("application/merge-patch+json").is_ok());
        assert!(check_patch("application/merge-patch+json; charset=utf-8").is_ok());
        let Err(refusal) = check_patch("application/json") else {
            panic!("plain JSON accepted as a merge patch");
        };
        assert!(
            refusal
                .to_string()
                .contains("Content-Type: application/merge-patch+json")
        );
    }
}
