//! The auth module over gRPC: [`AuthGrpcClient`] implements [`ward_bus::AuthApi`] for an auth
//! role in another process, [`AuthGrpcServer`] serves any implementation. Domain ↔ proto
//! conversions live here, once.
//!
//! `Login` and `Refresh` need no token; every other call reads the caller's token from metadata.
//! Tokens are still verified offline everywhere: nothing calls auth to check one.

mod client;
mod server;

use std::str::FromStr;

use uuid::Uuid;
use ward_bus::auth::{Session, UserChange, UserInfo};
use ward_bus::grpc::{format_timestamp, parse_timestamp, parse_uuid};
use ward_core::{UserRole, WardError, WardResult};
use ward_proto::v1 as proto;

pub use self::client::AuthGrpcClient;
pub use self::server::AuthGrpcServer;

/// The full gRPC name of the service, as the health service reports it.
pub const AUTH_SERVICE_NAME: &str = proto::auth_service_server::SERVICE_NAME;

fn session_to_proto(session: Session) -> proto::LoginResponse {
    proto::LoginResponse {
        token: session.token,
        expires_at: format_timestamp(session.expires_at),
        refresh_token: session.refresh_token,
    }
}

fn session_from_proto(response: proto::LoginResponse) -> WardResult<Session> {
    Ok(Session {
        expires_at: parse_timestamp(&response.expires_at, "expiresAt")?,
        token: response.token,
        refresh_token: response.refresh_token,
    })
}

fn user_to_proto(user: UserInfo) -> proto::UserInfo {
    proto::UserInfo {
        id: user.id.to_string(),
        email: user.email,
        role: user.role.as_str().to_string(),
        disabled: user.disabled,
    }
}

fn user_from_proto(user: proto::UserInfo) -> WardResult<UserInfo> {
    Ok(UserInfo {
        id: parse_uuid(&user.id, "id")?,
        role: parse_user_role(&user.role)?,
        email: user.email,
        disabled: user.disabled,
    })
}

fn users_from_proto(response: proto::ListUsersResponse) -> WardResult<Vec<UserInfo>> {
    let mut users = Vec::with_capacity(response.users.len());
    for user in response.users {
        users.push(user_from_proto(user)?);
    }
    Ok(users)
}

fn users_to_proto(users: Vec<UserInfo>) -> proto::ListUsersResponse {
    proto::ListUsersResponse {
        users: users.into_iter().map(user_to_proto).collect(),
    }
}

fn user_change_to_proto(user_id: Uuid, change: UserChange) -> proto::UpdateUserRequest {
    proto::UpdateUserRequest {
        id: user_id.to_string(),
        role: change.role.map(|role| role.as_str().to_string()),
        disabled: change.disabled,
    }
}

/// Reads an update request; a malformed id or an unknown role is `InvalidArgument` naming its
/// field (both at once).
fn user_change_from_proto(request: proto::UpdateUserRequest) -> WardResult<(Uuid, UserChange)> {
    let id_result = parse_uuid(&request.id, "id");
    let role_result = request.role.as_deref().map(parse_user_role).transpose();
    match (id_result, role_result) {
        (Ok(user_id), Ok(role)) => Ok((
            user_id,
            UserChange {
                role,
                disabled: request.disabled,
            },
        )),
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => Err(error),
        (Err(id_error), Err(role_error)) => {
            let mut errors = id_error.field_errors().to_vec();
            errors.extend_from_slice(role_error.field_errors());
            Err(WardError::invalid(
                "the change has 2 invalid fields",
                errors,
            ))
        }
    }
}

/// Parses a role name; an unknown one is `InvalidArgument` naming `role` and the valid names.
fn parse_user_role(raw: &str) -> WardResult<UserRole> {
    UserRole::from_str(raw).map_err(|message| WardError::invalid_field("role", message))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn sessions_and_users_round_trip() {
        let session = Session {
            token: "t0ken".into(),
            expires_at: Utc.timestamp_opt(1_700_000_900, 0).unwrap(),
            refresh_token: "wrt_r3fresh".into(),
        };
        let back = session_from_proto(session_to_proto(session.clone())).unwrap();
        assert_eq!(
            (back.token, back.expires_at, back.refresh_token),
            (session.token, session.expires_at, session.refresh_token)
        );

        let user = UserInfo {
            id: Uuid::now_v7(),
            email: "ada@example.com".into(),
            role: UserRole::Billing,
            disabled: true,
        };
        assert_eq!(user_from_proto(user_to_proto(user.clone())).unwrap(), user);
        let users = vec![
            user.clone(),
            UserInfo {
                disabled: false,
                ..user
            },
        ];
        assert_eq!(
            users_from_proto(users_to_proto(users.clone())).unwrap(),
            users
        );
    }

    #[test]
    fn user_changes_round_trip_with_absent_fields_kept_absent() {
        let user_id = Uuid::now_v7();
        let changes = [
            UserChange::default(),
            UserChange {
                role: Some(UserRole::Analyst),
                disabled: None,
            },
            UserChange {
                role: None,
                disabled: Some(false),
            },
        ];
        for change in changes {
            let back = user_change_from_proto(user_change_to_proto(user_id, change.clone()));
            assert_eq!(back.unwrap(), (user_id, change));
        }
    }

    #[test]
    fn a_bad_update_names_every_bad_field() {
        let request = proto::UpdateUserRequest {
            id: "nope".into(),
            role: Some("superuser".into()),
            disabled: None,
        };
        let error = user_change_from_proto(request).unwrap_err();
        let fields: Vec<&str> = error
            .field_errors()
            .iter()
            .map(|field_error| field_error.field.as_str())
            .collect();
        assert_eq!(fields, vec!["id", "role"]);
    }

    #[test]
    fn an_unknown_role_names_the_field() {
        let error = parse_user_role("superuser").unwrap_err();
        assert_eq!(error.field_errors()[0].field, "role");
    }
}
