//! Who is calling, passed on every bus call so each module authorizes for itself.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Right, UserRole, WardError, WardResult};

/// Decides one access by a verified principal. The token verifier builds one per request that
/// evaluates the token's biscuit Datalog (role policy plus any narrowing the holder appended);
/// [`RoleTable`] is the plain table, for principals that never came from a token (tests).
pub trait AccessPolicy: Send + Sync + fmt::Debug {
    /// Ok when `right` may be used on `patient_ids` (empty: no particular patient, e.g. a search
    /// or a figure); the error is a reason for logs, never shown to the caller.
    fn authorize(&self, right: Right, patient_ids: &[Uuid]) -> Result<(), String>;

    /// Whether the holder narrowed the token (read only, one patient, ...). A narrowed token is
    /// meant for a third-party app, so it may not end the session or change the password.
    fn is_narrowed(&self) -> bool {
        false
    }
}

/// The role's rights from [`UserRole::rights`], with no narrowing.
#[derive(Debug, Clone, Copy)]
pub struct RoleTable(pub UserRole);

impl AccessPolicy for RoleTable {
    fn authorize(&self, right: Right, _patient_ids: &[Uuid]) -> Result<(), String> {
        if self.0.rights().contains(&right) {
            Ok(())
        } else {
            Err(format!("role {} lacks the right {right}", self.0))
        }
    }
}

/// An authenticated staff member, as read from a verified token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub email: String,
    pub role: UserRole,
    /// The rights the role grants and the token lists (before any narrowing), for display.
    pub rights: Vec<Right>,
    /// The login session (refresh-token family) the token belongs to; logout revokes it.
    pub session_id: Uuid,
    pub expires_at: DateTime<Utc>,
    /// Evaluated on every access: see [`CallerContext::require_for`].
    pub policy: Arc<dyn AccessPolicy>,
}

impl Principal {
    /// See [`AccessPolicy::is_narrowed`].
    pub fn is_narrowed(&self) -> bool {
        self.policy.is_narrowed()
    }

    /// A principal whose access follows the role table alone, in a fresh session valid for an
    /// hour. For tests and tools; tokens are verified into principals by `ward_bus::token`.
    pub fn with_role(user_id: Uuid, email: impl Into<String>, role: UserRole) -> Self {
        Self {
            user_id,
            email: email.into(),
            role,
            rights: role.rights().to_vec(),
            session_id: Uuid::now_v7(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
            policy: Arc::new(RoleTable(role)),
        }
    }
}

/// The caller of a bus operation.
#[derive(Debug, Clone)]
pub struct CallerContext {
    principal_opt: Option<Principal>,
    /// Set for Ward's own background work (event consumers, demo loading); never from a request.
    system: bool,
    request_id: String,
    /// The bearer token as received, forwarded to remote modules so they can verify it themselves.
    token_opt: Option<String>,
    /// The client's network address (an IP), as the gateway saw it; used to throttle logins.
    client_addr_opt: Option<String>,
}

impl CallerContext {
    pub fn anonymous(request_id: impl Into<String>) -> Self {
        Self {
            principal_opt: None,
            system: false,
            request_id: request_id.into(),
            token_opt: None,
            client_addr_opt: None,
        }
    }

    pub fn authenticated(
        principal: Principal,
        token: impl Into<String>,
        request_id: impl Into<String>,
    ) -> Self {
        Self {
            principal_opt: Some(principal),
            system: false,
            request_id: request_id.into(),
            token_opt: Some(token.into()),
            client_addr_opt: None,
        }
    }

    /// Ward acting on its own behalf (event consumers, `--demo` loading). Holds every right.
    pub fn system(purpose: &str) -> Self {
        Self {
            principal_opt: None,
            system: true,
            request_id: format!("system:{purpose}"),
            token_opt: None,
            client_addr_opt: None,
        }
    }

    /// Returns this context with the client's network address (an IP, without the port).
    pub fn with_client_addr(mut self, addr: impl Into<String>) -> Self {
        self.client_addr_opt = Some(addr.into());
        self
    }

    /// The client's network address, when the request came from outside (set by the gateway).
    pub fn client_addr(&self) -> Option<&str> {
        self.client_addr_opt.as_deref()
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    pub fn principal(&self) -> Option<&Principal> {
        self.principal_opt.as_ref()
    }

    pub fn token(&self) -> Option<&str> {
        self.token_opt.as_deref()
    }

    pub fn is_system(&self) -> bool {
        self.system
    }

    /// Who to record in an audit trail.
    pub fn actor(&self) -> String {
        match (&self.principal_opt, self.system) {
            (Some(principal), _) => principal.user_id.to_string(),
            (None, true) => self.request_id.clone(),
            (None, false) => "anonymous".into(),
        }
    }

    /// Fails unless the caller may use `right` with no particular patient: 401 with no
    /// identity, 403 when the policy says no.
    pub fn require(&self, right: Right) -> WardResult<()> {
        self.require_for(right, &[])
    }

    /// Fails unless the caller may use `right` on every one of `patient_ids`; the principal's
    /// policy decides (a token narrowed to one patient passes only for that patient).
    pub fn require_for(&self, right: Right, patient_ids: &[Uuid]) -> WardResult<()> {
        if self.system {
            return Ok(());
        }
        let Some(principal) = &self.principal_opt else {
            return Err(WardError::Unauthenticated(
                "a valid bearer token is required".into(),
            ));
        };
        principal
            .policy
            .authorize(right, patient_ids)
            .map_err(|reason| {
                tracing::debug!(%reason, %right, user_id = %principal.user_id, "access denied");
                WardError::Forbidden(format!(
                    "this token does not allow {right} here (role {})",
                    principal.role
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clinician() -> Principal {
        Principal::with_role(Uuid::nil(), "c@example.com", UserRole::Clinician)
    }

    #[test]
    fn require_distinguishes_unauthenticated_from_forbidden() {
        let anonymous = CallerContext::anonymous("r1");
        assert!(matches!(
            anonymous.require(Right::PatientsRead),
            Err(WardError::Unauthenticated(_))
        ));
        let caller = CallerContext::authenticated(clinician(), "t", "r2");
        assert!(caller.require(Right::PatientsWrite).is_ok());
        assert!(matches!(
            caller.require(Right::UsersAdmin),
            Err(WardError::Forbidden(_))
        ));
        assert!(
            CallerContext::system("test")
                .require(Right::UsersAdmin)
                .is_ok()
        );
    }

    #[test]
    fn client_addr_is_absent_until_set() {
        let anonymous = CallerContext::anonymous("r1");
        assert_eq!(anonymous.client_addr(), None);
        let with_addr = anonymous.with_client_addr("192.0.2.7");
        assert_eq!(with_addr.client_addr(), Some("192.0.2.7"));
        assert_eq!(with_addr.request_id(), "r1");
    }
}
