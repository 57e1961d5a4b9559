//! The authenticated caller: the extractor every `/api/**` route and `/auth/me` takes.
//!
//! It only establishes who is calling, by verifying the bearer token offline. What the caller may
//! do is decided by the module behind each trait (`CallerContext::require`), never here.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::{FromRequest, HttpRequest, web};
use chrono::Utc;
use ward_core::{CallerContext, Principal, WardError, WardResult};

use crate::ApiBackends;
use crate::problem::ApiError;
use crate::request_id::request_id_of;

/// A caller whose bearer token verified; missing or invalid tokens are a 401 problem.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    principal: Principal,
    context: CallerContext,
}

impl Caller {
    /// The context to pass on every bus call.
    pub(crate) fn context(&self) -> &CallerContext {
        &self.context
    }

    pub(crate) fn principal(&self) -> &Principal {
        &self.principal
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(authenticate(request).map_err(ApiError::from))
    }
}

fn authenticate(request: &HttpRequest) -> WardResult<Caller> {
    let Some(backends) = request.app_data::<web::Data<ApiBackends>>() else {
        return Err(WardError::Internal(
            "the API routes are mounted without their backends".into(),
        ));
    };
    let token = bearer_token(request.headers())?;
    let principal = (backends.token_check)(token, Utc::now())?;
    let request_id = request_id_of(request);
    let mut context = CallerContext::authenticated(principal.clone(), token, request_id.as_str());
    // For the audit trail (and throttling of password changes).
    if let Some(addr) = crate::client_addr::client_addr(request) {
        context = context.with_client_addr(addr);
    }
    Ok(Caller { principal, context })
}

/// Returns the token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> WardResult<&str> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(WardError::Unauthenticated(
            "a bearer token is required in the Authorization header".into(),
        ));
    };
    let malformed =
        || WardError::Unauthenticated("the Authorization header must be `Bearer <token>`".into());
    let text = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, padded_token)) = text.trim().split_once(' ') else {
        return Err(malformed());
    };
    let token = padded_token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers_with(authorization: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static(authorization));
        headers
    }

    #[test]
    fn bearer_tokens_are_read_whatever_the_scheme_case() {
        assert_eq!(bearer_token(&headers_with("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&headers_with("bearer  abc ")).unwrap(), "abc");
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_unauthenticated() {
        for authorization in ["Basic dXNlcjpwdw==", "Bearer", "Bearer   ", "abc"] {
            let error = bearer_token(&headers_with(authorization)).unwrap_err();
            assert!(
                matches!(error, WardError::Unauthenticated(_)),
                "{authorization}"
            );
        }
        let error = bearer_token(&HeaderMap::new()).unwrap_err();
        assert!(matches!(error, WardError::Unauthenticated(_)));
    }
}
