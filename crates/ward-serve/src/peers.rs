//! Clients for roles that do not run in this process.
//!
//! A role that is neither local nor configured under `peers.<role>` answers every call with
//! `Unavailable`, saying which setting is missing, and readiness reports the same, so a process
//! never pretends to be complete. Configured peers are reached over gRPC instead.

use async_trait::async_trait;
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ward_bus::analytics::{Receivables, ReceivablesQuery, Summary, Timeseries, TimeseriesQuery};
use ward_bus::auth::{NewUser, PasswordChange, Session, UserChange, UserInfo};
use ward_bus::billing::{BillingAccount, OpenAccountRequest};
use ward_bus::billing::{
    Invoice, InvoicePage, InvoiceQuery, LedgerEntry, NewAdjustment, NewInvoice, NewPayment,
    Payment, PaymentReceipt, Refund, Statement,
};
use ward_bus::patients::{
    AuditPage, AuditQuery, IdempotencyKey, ImportOutcome, NewPatient, PageRequest, Patient,
    PatientChanges, PatientPage, PatientSearch, PatientVersion,
};
use ward_bus::{AnalyticsApi, AuthApi, BillingApi, PatientsApi};
use ward_core::{CallerContext, Role, WardError, WardResult};

/// Stands in for a role that runs elsewhere.
pub struct MissingPeer {
    reason: String,
}

impl MissingPeer {
    pub fn new(role: Role) -> Self {
        Self {
            reason: missing_peer_reason(role),
        }
    }

    fn fail<T>(&self) -> WardResult<T> {
        Err(WardError::Unavailable(self.reason.clone()))
    }
}

/// Why `role` cannot be reached from this process, phrased for the operator.
pub fn missing_peer_reason(role: Role) -> String {
    format!(
        "the {role} role does not run in this process and peers.{role} is not set; \
         run it here (--roles ...,{role}) or set peers.{role} (WARD_PEERS__{})",
        role.as_str().to_uppercase()
    )
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
    async fn refresh(&self, _ctx: &CallerContext, _refresh_token: &str) -> WardResult<Session> {
        self.fail()
    }
    async fn logout(&self, _ctx: &CallerContext) -> WardResult<()> {
        self.fail()
    }
    async fn change_password(
        &self,
        _ctx: &CallerContext,
        _change: PasswordChange,
    ) -> WardResult<()> {
        self.fail()
    }
    async fn me(&self, _ctx: &CallerContext) -> WardResult<UserInfo> {
        self.fail()
    }
    async fn create_user(&self, _ctx: &CallerContext, _user: NewUser) -> WardResult<UserInfo> {
        self.fail()
    }
    async fn list_users(&self, _ctx: &CallerContext) -> WardResult<Vec<UserInfo>> {
        self.fail()
    }
    async fn update_user(
        &self,
        _ctx: &CallerContext,
        _user_id: Uuid,
        _change: UserChange,
    ) -> WardResult<UserInfo> {
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
        _idempotency_key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Patient> {
        self.fail()
    }
    async fn get_patient(&self, _ctx: &CallerContext, _id: Uuid) -> WardResult<Patient> {
        self.fail()
    }
    async fn merge_patients(
        &self,
        _ctx: &CallerContext,
        _target: Uuid,
        _source: Uuid,
        _expected_target_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        self.fail()
    }
    async fn unmerge_patients(
        &self,
        _ctx: &CallerContext,
        _target: Uuid,
        _source: Uuid,
    ) -> WardResult<(Patient, Patient)> {
        self.fail()
    }
    async fn list_patients(
        &self,
        _ctx: &CallerContext,
        _page: PageRequest,
    ) -> WardResult<PatientPage> {
        self.fail()
    }
    async fn search_patients(
        &self,
        _ctx: &CallerContext,
        _search: PatientSearch,
    ) -> WardResult<PatientPage> {
        self.fail()
    }
    async fn update_patient(
        &self,
        _ctx: &CallerContext,
        _id: Uuid,
        _changes: PatientChanges,
        _expected_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        self.fail()
    }
    async fn delete_patient(
        &self,
        _ctx: &CallerContext,
        _id: Uuid,
        _expected_version_opt: Option<u32>,
    ) -> WardResult<()> {
        self.fail()
    }
    async fn restore_patient(
        &self,
        _ctx: &CallerContext,
        _id: Uuid,
        _expected_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        self.fail()
    }
    async fn purge_patient(&self, _ctx: &CallerContext, _id: Uuid) -> WardResult<()> {
        self.fail()
    }
    async fn patient_history(
        &self,
        _ctx: &CallerContext,
        _id: Uuid,
    ) -> WardResult<Vec<PatientVersion>> {
        self.fail()
    }
    async fn patient_version(
        &self,
        _ctx: &CallerContext,
        _id: Uuid,
        _version: u32,
    ) -> WardResult<PatientVersion> {
        self.fail()
    }
    async fn import_patients(
        &self,
        _ctx: &CallerContext,
        _patients: Vec<(Uuid, NewPatient)>,
    ) -> WardResult<Vec<ImportOutcome>> {
        self.fail()
    }
    async fn export_patients(
        &self,
        _ctx: &CallerContext,
        _since_opt: Option<DateTime<Utc>>,
        _page: PageRequest,
    ) -> WardResult<PatientPage> {
        self.fail()
    }
    async fn audit_events(
        &self,
        _ctx: &CallerContext,
        _query: AuditQuery,
    ) -> WardResult<AuditPage> {
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
    async fn create_invoice(
        &self,
        _ctx: &CallerContext,
        _invoice: NewInvoice,
    ) -> WardResult<Invoice> {
        self.fail()
    }
    async fn get_invoice(&self, _ctx: &CallerContext, _invoice_id: Uuid) -> WardResult<Invoice> {
        self.fail()
    }
    async fn list_invoices(
        &self,
        _ctx: &CallerContext,
        _query: InvoiceQuery,
    ) -> WardResult<InvoicePage> {
        self.fail()
    }
    async fn issue_invoice(&self, _ctx: &CallerContext, _invoice_id: Uuid) -> WardResult<Invoice> {
        self.fail()
    }
    async fn void_invoice(
        &self,
        _ctx: &CallerContext,
        _invoice_id: Uuid,
        _reason: String,
    ) -> WardResult<Invoice> {
        self.fail()
    }
    async fn record_payment(
        &self,
        _ctx: &CallerContext,
        _payment: NewPayment,
        _key: IdempotencyKey,
    ) -> WardResult<PaymentReceipt> {
        self.fail()
    }
    async fn get_payment(&self, _ctx: &CallerContext, _payment_id: Uuid) -> WardResult<Payment> {
        self.fail()
    }
    async fn refund_payment(
        &self,
        _ctx: &CallerContext,
        _payment_id: Uuid,
        _amount: i64,
        _key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Refund> {
        self.fail()
    }
    async fn post_adjustment(
        &self,
        _ctx: &CallerContext,
        _adjustment: NewAdjustment,
    ) -> WardResult<LedgerEntry> {
        self.fail()
    }
    async fn statement(
        &self,
        _ctx: &CallerContext,
        _patient_id: Uuid,
        _from_opt: Option<NaiveDate>,
        _to_opt: Option<NaiveDate>,
    ) -> WardResult<Statement> {
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
    async fn timeseries(
        &self,
        _ctx: &CallerContext,
        _query: TimeseriesQuery,
    ) -> WardResult<Timeseries> {
        self.fail()
    }
    async fn receivables(
        &self,
        _ctx: &CallerContext,
        _query: ReceivablesQuery,
    ) -> WardResult<Receivables> {
        self.fail()
    }
    async fn check_ready(&self) -> WardResult<()> {
        self.fail()
    }
}
