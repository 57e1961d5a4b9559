//! The billing module's contract.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ward_core::{CallerContext, WardResult};

pub type BillingClient = Arc<dyn BillingApi>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// The patient was merged into another as a duplicate; the other's account is the one
    /// that bills. Undone by an unmerge.
    Merged,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "ACTIVE",
            AccountStatus::Merged => "MERGED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ACTIVE" => Some(AccountStatus::Active),
            "MERGED" => Some(AccountStatus::Merged),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingAccount {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub status: AccountStatus,
    pub opened_at: DateTime<Utc>,
}

/// The reference's `BillingRequest{patientId,name,email}`.
#[derive(Debug, Clone)]
pub struct OpenAccountRequest {
    pub patient_id: Uuid,
    pub name: String,
    /// Empty when the patient has none (FHIR does not require one).
    pub email: String,
}

#[async_trait]
pub trait BillingApi: Send + Sync + 'static {
    /// Opens the patient's account, or returns the one already open: exactly one per patient.
    /// Needs `billing:write`.
    async fn create_billing_account(
        &self,
        ctx: &CallerContext,
        request: OpenAccountRequest,
    ) -> WardResult<BillingAccount>;

    /// Needs `billing:read`; `NotFound` ("Billing account not found") when none is open.
    async fn get_account_by_patient(
        &self,
        ctx: &CallerContext,
        patient_id: Uuid,
    ) -> WardResult<BillingAccount>;

    async fn check_ready(&self) -> WardResult<()>;
}
