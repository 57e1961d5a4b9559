//! The auth module over gRPC: [`AuthGrpcClient`] implements [`ward_bus::AuthApi`] for an auth
//! role in another process, [`AuthGrpcServer`] serves any implementation. Domain ↔ proto
//! conversions live here, once.
//!
//! `Login` needs no token; `Me` and `CreateUser` read the caller's token from metadata. Tokens are
//! still verified offline everywhere: nothing calls auth to check one.

mod client;
mod server;

use std::str::FromStr;

use ward_bus::auth::{Session, UserInfo};
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
    }
}

fn session_from_proto(response: proto::LoginResponse) -> WardResult<Session> {
    Ok(Session {
        expires_at: parse_timestamp(&response.expires_at, "expiresAt")?,
        token: response.token,
    })
}

fn user_to_proto(user: UserInfo) -> proto::UserInfo {
    proto::UserInfo {
        id: user.id.to_string(),
        email: user.email,
        role: user.role.as_str().to_string(),
    }
}

fn user_from_proto(user: proto::UserInfo) -> WardResult<UserInfo> {
    Ok(UserInfo {
        id: parse_uuid(&user.id, "id")?,
        role: parse_user_role(&user.role)?,
        email: user.email,
    })
}

/// Parses a role name; an unknown one is `InvalidArgument` naming `role` and the valid names.
fn parse_user_role(raw: &str) -> WardResult<UserRole> {
    UserRole::from_str(raw).map_err(|message| WardError::invalid_field("role", message))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn sessions_and_users_round_trip() {
        let session = Session {
            token: "t0ken".into(),
            expires_at: Utc.timestamp_opt(1_700_000_900, 0).unwrap(),
        };
        let back = session_from_proto(session_to_proto(session.clone())).unwrap();
        assert_eq!(
            (back.token, back.expires_at),
            (session.token, session.expires_at)
        );

        let user = UserInfo {
            id: Uuid::now_v7(),
            email: "ada@example.com".into(),
            role: UserRole::Billing,
        };
        assert_eq!(user_from_proto(user_to_proto(user.clone())).unwrap(), user);
    }

    #[test]
    fn an_unknown_role_names_the_field() {
        let error = parse_user_role("superuser").unwrap_err();
        assert_eq!(error.field_errors()[0].field, "role");
    }
}
