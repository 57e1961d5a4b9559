//! `/auth/**`: login, token validation, the caller's account.

use actix_web::{HttpRequest, web};
use ward_core::CallerContext;

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::{LoginBody, LoginResponse, MeResponse, ValidateResponse};
use crate::json::ApiJson;
use crate::openapi::{
    BadRequest, PayloadTooLarge, ServiceUnavailable, Unauthorized, UnsupportedMediaType,
};
use crate::problem::{ApiError, Problem};
use crate::request_id::RequestId;

/// Exchanges credentials for an access token.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "The credentials match an account", body = LoginResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (
            status = 429,
            description = "Too many failed logins for this account or from this address; \
                retry after the seconds in `Retry-After`",
            body = Problem,
            content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again")),
        ),
        (status = 503, response = ServiceUnavailable),
    )
)]
#[tracing::instrument(name = "gateway.login", skip_all)]
pub(crate) async fn login(
    backends: web::Data<ApiBackends>,
    request_id: RequestId,
    request: HttpRequest,
    body: ApiJson<LoginBody>,
) -> Result<web::Json<LoginResponse>, ApiError> {
    let credentials = body.into_inner().into_credentials()?;
    let mut context = CallerContext::anonymous(request_id.as_str());
    // The TCP peer's IP, for per-address throttling. Behind a proxy this is the proxy's address;
    // trusting a forwarded-for header from configured proxies is future work.
    if let Some(peer) = request.peer_addr() {
        context = context.with_client_addr(peer.ip().to_string());
    }
    let session = backends
        .auth
        .login(&context, &credentials.email, &credentials.password)
        .await?;
    Ok(web::Json(LoginResponse::from(session)))
}

/// Checks a bearer token offline and tells who holds it.
#[utoipa::path(
    get,
    path = "/auth/validate",
    tag = "auth",
    responses(
        (status = 200, description = "The token is valid", body = ValidateResponse),
        (status = 401, response = Unauthorized),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.validate", skip_all)]
pub(crate) async fn validate(caller: Caller) -> web::Json<ValidateResponse> {
    web::Json(ValidateResponse::from(caller.principal()))
}

/// Returns the account behind the caller's token.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller's account", body = MeResponse),
        (status = 401, response = Unauthorized),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.me", skip_all)]
pub(crate) async fn me(
    backends: web::Data<ApiBackends>,
    caller: Caller,
) -> Result<web::Json<MeResponse>, ApiError> {
    let user = backends.auth.me(caller.context()).await?;
    Ok(web::Json(MeResponse::from(user)))
}
