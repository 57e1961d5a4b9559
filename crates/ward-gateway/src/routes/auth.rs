//! `/auth/**`: login, refresh and logout, password change, token validation and narrowing, the
//! caller's account.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use ward_core::{CallerContext, WardError};

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::{
    AccessTokenResponse, LoginBody, LoginResponse, MeResponse, NarrowBody, PasswordBody,
    RefreshBody, ValidateResponse,
};
use crate::json::ApiJson;
use crate::openapi::{
    BadRequest, Forbidden, PayloadTooLarge, ServiceUnavailable, Unauthorized, UnsupportedMediaType,
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
    let context = anonymous_context(&request_id, &request);
    let session = backends
        .auth
        .login(&context, &credentials.email, &credentials.password)
        .await?;
    Ok(web::Json(LoginResponse::from(session)))
}

/// The context of a caller without a token (login, refresh), with the client's address.
fn anonymous_context(request_id: &RequestId, request: &HttpRequest) -> CallerContext {
    let context = CallerContext::anonymous(request_id.as_str());
    // For per-address throttling.
    match crate::client_addr::client_addr(request) {
        Some(addr) => context.with_client_addr(addr),
        None => context,
    }
}

/// Spends a refresh token for a new access token and a new refresh token. No bearer token is
/// needed; a spent, expired or revoked refresh token is a 401 (a spent one also ends its
/// session, as someone replayed it).
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "The session goes on with new tokens", body = LoginResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (
            status = 429,
            description = "Too many attempts; retry after the seconds in `Retry-After`",
            body = Problem,
            content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again")),
        ),
        (status = 503, response = ServiceUnavailable),
    )
)]
#[tracing::instrument(name = "gateway.refresh", skip_all)]
pub(crate) async fn refresh(
    backends: web::Data<ApiBackends>,
    request_id: RequestId,
    request: HttpRequest,
    body: ApiJson<RefreshBody>,
) -> Result<web::Json<LoginResponse>, ApiError> {
    let refresh_token = body.into_inner().into_refresh_token()?;
    let context = anonymous_context(&request_id, &request);
    let session = backends.auth.refresh(&context, &refresh_token).await?;
    Ok(web::Json(LoginResponse::from(session)))
}

/// Ends the caller's session: its refresh tokens stop working at once, its access tokens within
/// seconds. A narrowed token cannot do this.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    responses(
        (status = 204, description = "The session is over"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.logout", skip_all)]
pub(crate) async fn logout(
    backends: web::Data<ApiBackends>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    backends.auth.logout(caller.context()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Changes the caller's own password; every session of the account ends, this one included.
/// A wrong current password is a 401; a new one the policy refuses, a 400.
#[utoipa::path(
    post,
    path = "/auth/password",
    tag = "auth",
    request_body = PasswordBody,
    responses(
        (status = 204, description = "The password is changed; log in again"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (
            status = 429,
            description = "Too many attempts; retry after the seconds in `Retry-After`",
            body = Problem,
            content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again")),
        ),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.change_password", skip_all)]
pub(crate) async fn change_password(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    body: ApiJson<PasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let change = body.into_inner().into_password_change()?;
    backends
        .auth
        .change_password(caller.context(), change)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Derives from the caller's token one that can do less (read only, one patient, an earlier
/// expiry), e.g. for a third-party app. Done offline: no module is called, and the new token
/// belongs to the same session.
#[utoipa::path(
    post,
    path = "/auth/narrow",
    tag = "auth",
    request_body = NarrowBody,
    responses(
        (status = 200, description = "The narrowed token", body = AccessTokenResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.narrow", skip_all)]
pub(crate) async fn narrow(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    body: ApiJson<NarrowBody>,
) -> Result<web::Json<AccessTokenResponse>, ApiError> {
    let now = Utc::now();
    let narrowing = body.into_inner().into_narrowing(now)?;
    // `Caller` only exists for a verified bearer token, so the token is always there.
    let Some(token) = caller.context().token() else {
        return Err(WardError::Unauthenticated("a bearer token is required".into()).into());
    };
    let narrowed = (backends.token_narrow)(token, &narrowing, now)?;
    Ok(web::Json(AccessTokenResponse::from(narrowed)))
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
