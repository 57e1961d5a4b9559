//! `/api/users`: staff accounts, for admins. The auth module checks `users:admin` on every call.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use ward_core::id::parse_id;

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::{NewUserBody, UserListResponse, UserPatchBody, UserResponse};
use crate::json::ApiJson;
use crate::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable, Unauthorized,
    UnsupportedMediaType,
};
use crate::problem::ApiError;

/// Lists every staff account, ordered by email. Admins only.
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "users",
    responses(
        (status = 200, description = "Every account", body = UserListResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.list_users", skip_all)]
pub(crate) async fn list_users(
    backends: web::Data<ApiBackends>,
    caller: Caller,
) -> Result<web::Json<UserListResponse>, ApiError> {
    let users = backends.auth.list_users(caller.context()).await?;
    Ok(web::Json(UserListResponse::from(users)))
}

/// Creates a staff account. Admins only; a taken email is a 409, a password the policy refuses
/// a 400.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "users",
    request_body = NewUserBody,
    responses(
        (status = 201, description = "Created", body = UserResponse,
            headers(("Location" = String, description = "The new account's URL"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.create_user", skip_all)]
pub(crate) async fn create_user(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    body: ApiJson<NewUserBody>,
) -> Result<HttpResponse, ApiError> {
    let new_user = body.into_inner().into_new_user()?;
    let user = backends
        .auth
        .create_user(caller.context(), new_user)
        .await?;
    let location = format!("/api/users/{}", user.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(UserResponse::from(user)))
}

/// Changes an account's role or disables it (or enables it again). Admins only. Either change
/// ends the account's current tokens; a change that would leave no enabled admin is a 409.
#[utoipa::path(
    patch,
    path = "/api/users/{id}",
    tag = "users",
    params(("id" = uuid::Uuid, Path, description = "The account's id")),
    request_body(content(
        (UserPatchBody = "application/json"),
        (UserPatchBody = "application/merge-patch+json"),
    )),
    responses(
        (status = 200, description = "The changed account", body = UserResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.update_user", skip_all)]
pub(crate) async fn update_user(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
    body: ApiJson<UserPatchBody>,
) -> Result<web::Json<UserResponse>, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let change = body.into_inner().into_user_change()?;
    let user = backends
        .auth
        .update_user(caller.context(), id, change)
        .await?;
    Ok(web::Json(UserResponse::from(user)))
}
