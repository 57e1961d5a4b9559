//! The JSON body extractor every body-carrying route uses.
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
        if let Err(error) = check_media_type(request.mime_type()) {
            return ready(Err(error.into())).boxed_local();
        }
        web::Json::<T>::from_request(request, payload)
            .map(|result| result.map(|json| ApiJson(json.into_inner())))
            .boxed_local()
    }
}

/// Accepts `application/json` and `application/<anything>+json`, with any parameters.
fn check_media_type<E>(parsed: Result<Option<Mime>, E>) -> Result<(), ApiError> {
    match parsed {
        Ok(Some(media_type)) if is_json(&media_type) => Ok(()),
        Ok(Some(media_type)) => Err(ApiError::UnsupportedMediaType {
            found_opt: Some(
                media_type
                    .essence_str()
                    .chars()
                    .take(MEDIA_TYPE_ECHO_MAX_CHARS)
                    .collect(),
            ),
        }),
        // Missing and unparseable headers are both "not declared as JSON".
        Ok(None) | Err(_) => Err(ApiError::UnsupportedMediaType { found_opt: None }),
    }
}

fn is_json(media_type: &Mime) -> bool {
    media_type.type_() == mime::APPLICATION
        && (media_type.subtype() == mime::JSON || media_type.suffix() == Some(mime::JSON))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str) -> Result<(), ApiError> {
        check_media_type::<()>(Ok(Some(raw.parse().unwrap())))
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
            let Err(ApiError::UnsupportedMediaType { found_opt }) = check(raw) else {
                panic!("{raw} accepted");
            };
            assert_eq!(found_opt.as_deref(), Some(raw));
        }
        assert!(matches!(
            check_media_type::<()>(Ok(None)),
            Err(ApiError::UnsupportedMediaType { found_opt: None })
        ));
    }
}
