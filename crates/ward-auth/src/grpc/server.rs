//! [`AuthGrpcServer`]: serves any [`AuthApi`] implementation as `ward.v1.AuthService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use ward_bus::AuthApi;
use ward_bus::auth::{NewUser, PasswordChange};
use ward_bus::grpc::{caller_from_request, respond};
use ward_bus::token::TokenVerifier;
use ward_proto::v1 as proto;
use ward_proto::v1::auth_service_server::{AuthService, AuthServiceServer};

use super::{
    parse_user_role, session_to_proto, user_change_from_proto, user_to_proto, users_to_proto,
};

/// The gRPC face of an auth module: builds the caller from metadata (anonymous for `Login` and
/// `Refresh`), calls the trait, and answers errors through the one table. Requests hold
/// passwords and refresh tokens, so they are never logged.
pub struct AuthGrpcServer {
    service: Arc<dyn AuthApi>,
    verifier: TokenVerifier,
}

impl AuthGrpcServer {
    /// Returns an adapter over `service`; `verifier` reads callers' bearer tokens.
    pub fn new(service: Arc<dyn AuthApi>, verifier: TokenVerifier) -> Self {
        Self { service, verifier }
    }

    /// Returns the tonic service to add to a server.
    pub fn into_service(self) -> AuthServiceServer<Self> {
        AuthServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl AuthService for AuthGrpcServer {
    async fn login(
        &self,
        request: Request<proto::LoginRequest>,
    ) -> Result<Response<proto::LoginResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let credentials = request.into_inner();
        let result = self
            .service
            .login(&ctx, &credentials.email, &credentials.password)
            .await;
        respond(&ctx, "Login", result.map(session_to_proto))
    }

    async fn me(
        &self,
        request: Request<proto::MeRequest>,
    ) -> Result<Response<proto::UserInfo>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = self.service.me(&ctx).await;
        respond(&ctx, "Me", result.map(user_to_proto))
    }

    async fn create_user(
        &self,
        request: Request<proto::CreateUserRequest>,
    ) -> Result<Response<proto::UserInfo>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let message = request.into_inner();
        let result = match parse_user_role(&message.role) {
            Ok(role) => {
                let user = NewUser {
                    email: message.email,
                    password: message.password,
                    role,
                };
                self.service.create_user(&ctx, user).await
            }
            Err(error) => Err(error),
        };
        respond(&ctx, "CreateUser", result.map(user_to_proto))
    }

    async fn refresh(
        &self,
        request: Request<proto::RefreshRequest>,
    ) -> Result<Response<proto::LoginResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let message = request.into_inner();
        let result = self.service.refresh(&ctx, &message.refresh_token).await;
        respond(&ctx, "Refresh", result.map(session_to_proto))
    }

    async fn logout(
        &self,
        request: Request<proto::LogoutRequest>,
    ) -> Result<Response<proto::LogoutResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = self.service.logout(&ctx).await;
        respond(&ctx, "Logout", result.map(|()| proto::LogoutResponse {}))
    }

    async fn change_password(
        &self,
        request: Request<proto::ChangePasswordRequest>,
    ) -> Result<Response<proto::ChangePasswordResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let message = request.into_inner();
        let change = PasswordChange {
            current_password: message.current_password,
            new_password: message.new_password,
        };
        let result = self.service.change_password(&ctx, change).await;
        respond(
            &ctx,
            "ChangePassword",
            result.map(|()| proto::ChangePasswordResponse {}),
        )
    }

    async fn list_users(
        &self,
        request: Request<proto::ListUsersRequest>,
    ) -> Result<Response<proto::ListUsersResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = self.service.list_users(&ctx).await;
        respond(&ctx, "ListUsers", result.map(users_to_proto))
    }

    async fn update_user(
        &self,
        request: Request<proto::UpdateUserRequest>,
    ) -> Result<Response<proto::UserInfo>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match user_change_from_proto(request.into_inner()) {
            Ok((user_id, change)) => self.service.update_user(&ctx, user_id, change).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "UpdateUser", result.map(user_to_proto))
    }
}
