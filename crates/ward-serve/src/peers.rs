//! Clients for roles that do not run in this process.
//!
//! gRPC transports arrive with the production-transports work; until then a role that is not
//! local answers every call with `Unavailable`, saying which peer it needs, and readiness reports
//! the same, so a process never pretends to be complete.

use async_trait::async_trait;
use uuid::Uuid;
use ward_bus::analytics::Summary;
use ward_bus::auth::{NewUser, Session, UserInfo};
use ward_bus::billing::{BillingAccount, OpenAccountRequest};
use ward_bus::patients::{NewPatient, PageRequest, Patient, PatientChanges, PatientPage};
use ward_bus::{AnalyticsApi, AuthApi, BillingApi, PatientsApi};
use ward_core::config::PeersOptions;
use ward_core::{CallerContext, Role, WardError, WardResult};

/// Stands in for a role that runs elsewhere.
pub struct MissingPeer {
    reason: String,
}

impl MissingPeer {
    pub fn new(role: Role, peers: &PeersOptions) -> Self {
        Self {
            reason: missing_peer_reason(role, peers),
        }
    }

    fn fail<T>(&self) -> WardResult<T> {
        Err(WardError::Unavailable(self.reason.clone()))
    }
}

/// Why `role` cannot be reached from this process, phrased for the operator.
pub fn missing_peer_reason(role: Role, peers: &PeersOptions) -> String {
    let addresses = peers.for_role(role);
    if addresses.is_empty() {
        format!(
            "the {role} role does not run in this process and peers.{role} is not set; \
             run it here (--roles ...,{role}) or set peers.{role}"
        )
    } else {
        format!(
            "the {role} role does not run in this process; peers.{role} = {} is configured, \
             but this build has no gRPC transport yet, so run {role} in this process",
            addresses.join(", ")
        )
    }
}

#[async_trait]
impl AuthApi for MissingPeer {
    async fn login(
        &self,
        _ctx: &CallerContext,
        _email: &str,
        _password: &str,
    ) -> WardResult<Session> {
        self.fail()
    }
    async fn me(&self, _ctx: &CallerContext) -> WardResult<UserInfo> {
        self.fail()
    }
    async fn create_user(&self, _ctx: &CallerContext, _user: NewUser) -> WardResult<UserInfo> {
        self.fail()
    }
    async fn check_ready(&self) -> WardResult<()> {
        self.fail()
    }
}

#[async_trait]
impl PatientsApi for MissingPeer {
    async fn create_patient(
        &self,
        _ctx: &CallerContext,
        _patient: NewPatient,
    ) -> WardResult<Patient> {
        self.fail()
    }
    async fn get_patient(&self, _ctx: &CallerContext, _id: Uuid) -> WardResult<Patient> {
        self.fail()
    }
    async fn list_patients(
        &self,
        _ctx: &CallerContext,
        _page: PageRequest,
    ) -> WardResult<PatientPage> {
        self.fail()
    }
    async fn update_patient(
        &self,
        _ctx: &CallerContext,
        _id: Uuid,
        _changes: PatientChanges,
    ) -> WardResult<Patient> {
        self.fail()
    }
    async fn delete_patient(&self, _ctx: &CallerContext, _id: Uuid) -> WardResult<()> {
        self.fail()
    }
    async fn import_patients(
        &self,
        _ctx: &CallerContext,
        _patients: Vec<(Uuid, NewPatient)>,
    ) -> WardResult<u64> {
        self.fail()
    }
    async fn check_ready(&self) -> WardResult<()> {
        self.fail()
    }
}

#[async_trait]
impl BillingApi for MissingPeer {
    async fn create_billing_account(
        &self,
        _ctx: &CallerContext,
        _request: OpenAccountRequest,
    ) -> WardResult<BillingAccount> {
        self.fail()
    }
    async fn get_account_by_patient(
        &self,
        _ctx: &CallerContext,
        _patient_id: Uuid,
    ) -> WardResult<BillingAccount> {
        self.fail()
    }
    async fn check_ready(&self) -> WardResult<()> {
        self.fail()
    }
}

#[async_trait]
impl AnalyticsApi for MissingPeer {
    async fn summary(&self, _ctx: &CallerContext) -> WardResult<Summary> {
        self.fail()
    }
    async fn check_ready(&self) -> WardResult<()> {
        self.fail()
    }
}
