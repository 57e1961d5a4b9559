//! Who is calling, passed on every bus call so each module authorizes for itself.

use uuid::Uuid;

use crate::{Right, UserRole, WardError, WardResult};

/// An authenticated staff member, as read from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub email: String,
    pub role: UserRole,
    pub rights: Vec<Right>,
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

    /// Fails unless the caller holds `right`: 401 with no identity, 403 without the right.
    pub fn require(&self, right: Right) -> WardResult<()> {
        if self.system {
            return Ok(());
        }
        let Some(principal) = &self.principal_opt else {
            return Err(WardError::Unauthenticated(
                "a valid bearer token is required".into(),
            ));
        };
        if principal.rights.contains(&right) {
            Ok(())
        } else {
            Err(WardError::Forbidden(format!(
                "role {} lacks the right {right}",
                principal.role
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clinician() -> Principal {
        Principal {
            user_id: Uuid::nil(),
            email: "c@example.com".into(),
            role: UserRole::Clinician,
            rights: UserRole::Clinician.rights().to_vec(),
        }
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
