//! [`AuthGrpcClient`]: the auth module in another process, behind the same trait.

use async_trait::async_trait;
use tonic::Status;
use tonic::transport::Channel;
use uuid::Uuid;
use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, PasswordChange, Session, UserChange, UserInfo};
use ward_bus::grpc::{
    call_with_reconnect, check_serving, error_from_peer_status, malformed_reply, outgoing_request,
    peer_description,
};
use ward_core::{CallerContext, Role, WardError, WardResult};
use ward_proto::v1 as proto;
use ward_proto::v1::auth_service_client::AuthServiceClient;

use super::{
    AUTH_SERVICE_NAME, session_from_proto, user_change_to_proto, user_from_proto, users_from_proto,
};

/// Calls a remote auth role over a (balanced, lazily connected) gRPC channel.
///
/// The caller's token and request id travel in metadata; the remote module authorizes the call
/// itself. Errors come back with their kind intact (see [`ward_bus::grpc`]). A call whose
/// connection failed before it was sent is tried again (see [`call_with_reconnect`]), so a peer
/// restarted on its port answers the next call.
#[derive(Debug, Clone)]
pub struct AuthGrpcClient {
    channel: Channel,
    /// Names the peer in transport errors: "auth peer at http://…".
    peer: String,
}

impl AuthGrpcClient {
    /// Returns a client over `channel` (see [`ward_bus::grpc::connect_peer`]).
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            peer: peer_description(Role::Auth, &[]),
        }
    }

    /// Names `addresses` in the errors and readiness reasons this client gives.
    pub fn with_addresses(mut self, addresses: &[String]) -> Self {
        self.peer = peer_description(Role::Auth, addresses);
        self
    }

    fn client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }

    fn error(&self, status: Status) -> WardError {
        error_from_peer_status(&status, &self.peer)
    }

    fn user_reply(&self, user: proto::UserInfo) -> WardResult<UserInfo> {
        user_from_proto(user).map_err(|error| malformed_reply(&self.peer, error))
    }

    fn session_reply(&self, response: proto::LoginResponse) -> WardResult<Session> {
        session_from_proto(response).map_err(|error| malformed_reply(&self.peer, error))
    }
}

#[async_trait]
impl AuthApi for AuthGrpcClient {
    async fn login(&self, ctx: &CallerContext, email: &str, password: &str) -> WardResult<Session> {
        let message = proto::LoginRequest {
            email: email.to_string(),
            password: password.to_string(),
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.login(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        self.session_reply(response.into_inner())
    }

    async fn refresh(&self, ctx: &CallerContext, refresh_token: &str) -> WardResult<Session> {
        let message = proto::RefreshRequest {
            refresh_token: refresh_token.to_string(),
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.refresh(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        self.session_reply(response.into_inner())
    }

    async fn logout(&self, ctx: &CallerContext) -> WardResult<()> {
        let message = proto::LogoutRequest {};
        call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message, ctx);
            async move { client.logout(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        Ok(())
    }

    async fn change_password(&self, ctx: &CallerContext, change: PasswordChange) -> WardResult<()> {
        let message = proto::ChangePasswordRequest {
            current_password: change.current_password,
            new_password: change.new_password,
        };
        call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.change_password(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        Ok(())
    }

    async fn me(&self, ctx: &CallerContext) -> WardResult<UserInfo> {
        let message = proto::MeRequest {};
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message, ctx);
            async move { client.me(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        self.user_reply(response.into_inner())
    }

    async fn create_user(&self, ctx: &CallerContext, user: NewUser) -> WardResult<UserInfo> {
        let message = proto::CreateUserRequest {
            email: user.email,
            password: user.password,
            role: user.role.as_str().to_string(),
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.create_user(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        self.user_reply(response.into_inner())
    }

    async fn list_users(&self, ctx: &CallerContext) -> WardResult<Vec<UserInfo>> {
        let message = proto::ListUsersRequest {};
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message, ctx);
            async move { client.list_users(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        users_from_proto(response.into_inner()).map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn update_user(
        &self,
        ctx: &CallerContext,
        user_id: Uuid,
        change: UserChange,
    ) -> WardResult<UserInfo> {
        let message = user_change_to_proto(user_id, change);
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.update_user(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        self.user_reply(response.into_inner())
    }

    async fn check_ready(&self) -> WardResult<()> {
        check_serving(self.channel.clone(), AUTH_SERVICE_NAME, &self.peer).await
    }
}
