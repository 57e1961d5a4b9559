//! In-memory fakes of the module traits. Like the real modules, they authorize with
//! `ctx.require`, so the gateway's pass-through of 403s is exercised too.

mod auth;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use ward_bus::billing::{
    Invoice, InvoicePage, InvoiceQuery, LedgerEntry, NewAdjustment, NewInvoice, NewPayment,
    Payment, PaymentReceipt, Refund, Statement,
};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use uuid::Uuid;
use ward_bus::analytics::{
    AgingBuckets, AnalyticsApi, DailyCount, Receivables, ReceivablesQuery, Summary, Timeseries,
    TimeseriesPoint, TimeseriesQuery,
};
use ward_bus::auth::AccessToken;
use ward_bus::billing::{AccountStatus, BillingAccount, BillingApi, OpenAccountRequest};
use ward_bus::patients::{
    AuditPage, AuditQuery, IDEMPOTENCY_KEY_REUSED_MESSAGE, IdempotencyKey, ImportOutcome,
    NewPatient, PATIENT_GONE_MESSAGE, PageRequest, Patient, PatientChanges, PatientPage,
    PatientSearch, PatientSortField, PatientVersion, PatientsApi, SortKey, cursor_after,
    normalized_email, patient_changed,
};
use ward_bus::token::Narrowing;
use ward_core::{CallerContext, Principal, Right, UserRole, WardError, WardResult};
use ward_gateway::TokenNarrow;

pub use self::auth::FakeAuth;

pub const ADMIN_TOKEN: &str = "admin-token";
pub const ANALYST_TOKEN: &str = "analyst-token";
pub const ADMIN_EMAIL: &str = "testuser@test.com";
pub const ADMIN_PASSWORD: &str = "password123";
pub const ANALYST_EMAIL: &str = "analyst@test.com";
/// The auth module's policy, as the fake applies it.
pub const PASSWORD_MIN_CHARS: usize = 12;

pub fn admin_id() -> Uuid {
    Uuid::from_u128(1)
}

pub fn analyst_id() -> Uuid {
    Uuid::from_u128(2)
}

pub fn principal(role: UserRole) -> Principal {
    Principal::with_role(admin_id(), ADMIN_EMAIL, role)
}

/// Stands in for the biscuit verifier: two known tokens, everything else rejected.
pub fn check_token(token: &str, _now: DateTime<Utc>) -> WardResult<Principal> {
    match token {
        ADMIN_TOKEN => Ok(principal(UserRole::Admin)),
        ANALYST_TOKEN => Ok(principal(UserRole::Analyst)),
        _ => Err(WardError::Unauthenticated("the token is not valid".into())),
    }
}

pub fn session_expiry() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 10, 0, 0).unwrap()
}

/// What the fake narrowing was asked: the raw token, the narrowing and the instant.
#[derive(Debug, Clone)]
pub struct NarrowCall {
    pub token: String,
    pub narrowing: Narrowing,
    pub now: DateTime<Utc>,
}

/// Every call of the fake narrowing, in order.
#[derive(Debug, Clone, Default)]
pub struct NarrowLog(Arc<Mutex<Vec<NarrowCall>>>);

impl NarrowLog {
    pub fn calls(&self) -> Vec<NarrowCall> {
        self.0.lock().unwrap().clone()
    }
}

/// Stands in for `TokenVerifier::narrow`: checks the token as [`check_token`] does, refuses a
/// narrowing that takes nothing away, records the call and answers `<token>.narrowed`.
pub fn fake_narrow(log: NarrowLog) -> TokenNarrow {
    Arc::new(
        move |token: &str, narrowing: &Narrowing, now: DateTime<Utc>| {
            check_token(token, now)?;
            if *narrowing == Narrowing::default() {
                return Err(WardError::invalid_field("narrowing", "nothing to narrow"));
            }
            log.0.lock().unwrap().push(NarrowCall {
                token: token.to_string(),
                narrowing: narrowing.clone(),
                now,
            });
            let expires_at = match narrowing.expires_at_opt {
                Some(until) => until.min(session_expiry()),
                None => session_expiry(),
            };
            Ok(AccessToken {
                token: format!("{token}.narrowed"),
                expires_at,
            })
        },
    )
}

#[derive(Default)]
pub struct FakePatients {
    patients: Mutex<BTreeMap<Uuid, Patient>>,
    /// Soft-deleted patients, as they were when deleted (one version on).
    deleted: Mutex<BTreeMap<Uuid, Patient>>,
    /// Each patient's history, oldest first.
    history: Mutex<BTreeMap<Uuid, Vec<PatientVersion>>>,
    /// The expected version of every update and delete, in order: what `If-Match` became.
    expected_versions: Mutex<Vec<Option<u32>>>,
    /// Every search the gateway passed on, in order.
    searches: Mutex<Vec<PatientSearch>>,
    /// How many coming searches answer no patient, as if run before a concurrent create.
    num_searches_to_miss: Mutex<usize>,
    /// Each idempotency key's request and the patient it created (the fake ignores users).
    idempotency_keys: Mutex<BTreeMap<String, (NewPatient, Uuid)>>,
}

impl FakePatients {
    /// The expected versions the gateway passed to updates and deletes, in order.
    pub fn expected_versions(&self) -> Vec<Option<u32>> {
        self.expected_versions.lock().unwrap().clone()
    }

    fn record_version(&self, ctx: &CallerContext, patient: &Patient, action: &str) {
        let entry = PatientVersion {
            version: patient.version,
            at: Utc.with_ymd_and_hms(2024, 6, 1, 10, 0, 0).unwrap(),
            actor: ctx.actor(),
            action: action.into(),
            patient: patient.clone(),
        };
        let mut history = self.history.lock().unwrap();
        history.entry(patient.id).or_default().push(entry);
    }

    /// Refuses a stale expected version, as the real module does.
    fn check_version(
        &self,
        patient: &Patient,
        expected_version_opt: Option<u32>,
    ) -> WardResult<()> {
        self.expected_versions
            .lock()
            .unwrap()
            .push(expected_version_opt);
        match expected_version_opt {
            Some(expected) if expected != patient.version => Err(patient_changed(patient.version)),
            _ => Ok(()),
        }
    }

    /// Makes the next `num_searches` searches answer nothing: what a search run just before a
    /// concurrent create sees.
    pub fn miss_next_searches(&self, num_searches: usize) {
        *self.num_searches_to_miss.lock().unwrap() = num_searches;
    }

    /// The searches the gateway passed on, in order.
    pub fn searches(&self) -> Vec<PatientSearch> {
        self.searches.lock().unwrap().clone()
    }

    /// `Gone` for a soft-deleted patient, else `NotFound`: the real module's answers.
    fn missing(&self, id: Uuid) -> WardError {
        if self.deleted.lock().unwrap().contains_key(&id) {
            WardError::Gone(PATIENT_GONE_MESSAGE.into())
        } else {
            WardError::NotFound("Patient not found".into())
        }
    }

    /// How many patients the store holds: proves a rejected request wrote nothing.
    pub fn count(&self) -> usize {
        self.patients.lock().unwrap().len()
    }

    fn email_taken(
        patients: &BTreeMap<Uuid, Patient>,
        email_opt: Option<&str>,
        except_opt: Option<Uuid>,
    ) -> bool {
        let Some(email) = email_opt else {
            return false;
        };
        patients.values().any(|patient| {
            Some(patient.id) != except_opt
                && patient.email.as_deref().map(normalized_email) == Some(normalized_email(email))
        })
    }
}

#[async_trait]
impl PatientsApi for FakePatients {
    async fn create_patient(
        &self,
        ctx: &CallerContext,
        new: NewPatient,
        idempotency_key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Patient> {
        ctx.require(Right::PatientsWrite)?;
        let mut patients = self.patients.lock().unwrap();
        let mut idempotency_keys = self.idempotency_keys.lock().unwrap();
        if let Some(key) = &idempotency_key_opt
            && let Some((first, id)) = idempotency_keys.get(key.as_ref())
        {
            if *first != new {
                return Err(WardError::Unprocessable(
                    IDEMPOTENCY_KEY_REUSED_MESSAGE.into(),
                ));
            }
            return patients.get(id).cloned().ok_or_else(|| self.missing(*id));
        }
        if Self::email_taken(&patients, new.email.as_deref(), None) {
            return Err(WardError::AlreadyExists(
                "Email address already exists".into(),
            ));
        }
        let new_copy = new.clone();
        let patient = Patient {
            id: Uuid::now_v7(),
            name: new.name,
            email: new.email,
            address: new.address,
            date_of_birth: new.date_of_birth,
            registered_date: new.registered_date,
            version: 1,
            mrn: format!("MRN-{:08}", self.history.lock().unwrap().len() + 1),
            identifiers: Vec::new(),
            merged_into_opt: None,
            fhir_extras: new.fhir_extras,
        };
        if let Some(key) = idempotency_key_opt {
            idempotency_keys.insert(key.to_string(), (new_copy, patient.id));
        }
        patients.insert(patient.id, patient.clone());
        self.record_version(ctx, &patient, "create");
        Ok(patient)
    }

    async fn get_patient(&self, ctx: &CallerContext, id: Uuid) -> WardResult<Patient> {
        ctx.require(Right::PatientsRead)?;
        let patients = self.patients.lock().unwrap();
        patients.get(&id).cloned().ok_or_else(|| self.missing(id))
    }

    async fn list_patients(
        &self,
        ctx: &CallerContext,
        page: PageRequest,
    ) -> WardResult<PatientPage> {
        ctx.require(Right::PatientsRead)?;
        let patients = self.patients.lock().unwrap();
        let mut items: Vec<Patient> = patients
            .values()
            .filter(|patient| page.after_opt.is_none_or(|after| patient.id > after))
            .take(page.limit as usize + 1)
            .cloned()
            .collect();
        let mut next_cursor_opt = None;
        if items.len() > page.limit as usize {
            items.truncate(page.limit as usize);
            next_cursor_opt = items.last().map(|patient| cursor_after(patient.id));
        }
        Ok(PatientPage {
            items,
            next_cursor_opt,
            total_opt: None,
        })
    }

    /// Records the search and answers a page in id order, unfiltered: the module's matching is
    /// tested in the module; here only the gateway's parsing and paging pass-through are.
    async fn search_patients(
        &self,
        ctx: &CallerContext,
        search: PatientSearch,
    ) -> WardResult<PatientPage> {
        ctx.require(Right::PatientsRead)?;
        self.searches.lock().unwrap().push(search.clone());
        let mut num_searches_to_miss = self.num_searches_to_miss.lock().unwrap();
        if *num_searches_to_miss > 0 {
            *num_searches_to_miss -= 1;
            return Ok(PatientPage {
                items: Vec::new(),
                next_cursor_opt: None,
                total_opt: None,
            });
        }
        drop(num_searches_to_miss);
        let patients = self.patients.lock().unwrap();
        let after_opt = search.after_opt.as_ref().map(|after| after.id);
        let mut items: Vec<Patient> = patients
            .values()
            .filter(|patient| after_opt.is_none_or(|after| patient.id > after))
            .take(search.limit as usize + 1)
            .cloned()
            .collect();
        let mut next_cursor_opt = None;
        if items.len() > search.limit as usize {
            items.truncate(search.limit as usize);
            next_cursor_opt = items.last().map(|patient| {
                let key = match search.sort.field {
                    PatientSortField::Id => SortKey::None,
                    PatientSortField::Name => SortKey::Text(patient.name.to_lowercase()),
                    PatientSortField::BirthDate => SortKey::Date(patient.date_of_birth),
                    PatientSortField::RegisteredDate => SortKey::Date(patient.registered_date),
                };
                search.cursor_after(&key, patient.id)
            });
        }
        let total_opt = search.with_total.then_some(patients.len() as u64);
        Ok(PatientPage {
            items,
            next_cursor_opt,
            total_opt,
        })
    }

    async fn update_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        changes: PatientChanges,
        expected_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        ctx.require(Right::PatientsWrite)?;
        let mut patients = self.patients.lock().unwrap();
        let Some(existing) = patients.get(&id).cloned() else {
            return Err(self.missing(id));
        };
        self.check_version(&existing, expected_version_opt)?;
        if Self::email_taken(&patients, changes.email.as_deref(), Some(id)) {
            return Err(WardError::AlreadyExists(
                "Email address already exists".into(),
            ));
        }
        let patient = Patient {
            name: changes.name,
            email: changes.email,
            address: changes.address,
            date_of_birth: changes.date_of_birth,
            version: existing.version + 1,
            fhir_extras: changes.fhir_extras_opt.unwrap_or(existing.fhir_extras),
            ..existing
        };
        patients.insert(id, patient.clone());
        self.record_version(ctx, &patient, "update");
        Ok(patient)
    }

    async fn delete_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        expected_version_opt: Option<u32>,
    ) -> WardResult<()> {
        ctx.require(Right::PatientsWrite)?;
        let mut patients = self.patients.lock().unwrap();
        let Some(existing) = patients.get(&id).cloned() else {
            return Err(self.missing(id));
        };
        self.check_version(&existing, expected_version_opt)?;
        patients.remove(&id);
        let last = Patient {
            version: existing.version + 1,
            ..existing
        };
        self.deleted.lock().unwrap().insert(id, last.clone());
        self.record_version(ctx, &last, "delete");
        Ok(())
    }

    async fn restore_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        expected_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        ctx.require(Right::PatientsWrite)?;
        let mut patients = self.patients.lock().unwrap();
        if patients.contains_key(&id) {
            return Err(WardError::AlreadyExists("Patient is not deleted".into()));
        }
        let Some(existing) = self.deleted.lock().unwrap().get(&id).cloned() else {
            return Err(WardError::NotFound("Patient not found".into()));
        };
        self.check_version(&existing, expected_version_opt)?;
        self.deleted.lock().unwrap().remove(&id);
        let restored = Patient {
            version: existing.version + 1,
            ..existing
        };
        patients.insert(id, restored.clone());
        self.record_version(ctx, &restored, "restore");
        Ok(restored)
    }

    // Merging is the patients module's logic; the gateway's HTTP tests do not exercise it.
    async fn merge_patients(
        &self,
        ctx: &CallerContext,
        _target: Uuid,
        _source: Uuid,
        _expected_target_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        ctx.require(Right::PatientsWrite)?;
        Err(WardError::NotFound("Patient not found".into()))
    }

    async fn unmerge_patients(
        &self,
        ctx: &CallerContext,
        _target: Uuid,
        _source: Uuid,
    ) -> WardResult<(Patient, Patient)> {
        ctx.require(Right::PatientsWrite)?;
        Err(WardError::NotFound("Patient not found".into()))
    }

    async fn purge_patient(&self, ctx: &CallerContext, id: Uuid) -> WardResult<()> {
        ctx.require(Right::UsersAdmin)?;
        let live_opt = self.patients.lock().unwrap().remove(&id);
        let deleted_opt = self.deleted.lock().unwrap().remove(&id);
        if live_opt.is_none() && deleted_opt.is_none() {
            return Err(WardError::NotFound("Patient not found".into()));
        }
        self.history.lock().unwrap().remove(&id);
        Ok(())
    }

    async fn patient_history(
        &self,
        ctx: &CallerContext,
        id: Uuid,
    ) -> WardResult<Vec<PatientVersion>> {
        ctx.require(Right::PatientsRead)?;
        let history = self.history.lock().unwrap();
        let Some(entries) = history.get(&id) else {
            return Err(WardError::NotFound("Patient not found".into()));
        };
        Ok(entries.iter().rev().cloned().collect())
    }

    async fn patient_version(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        version: u32,
    ) -> WardResult<PatientVersion> {
        ctx.require(Right::PatientsRead)?;
        let history = self.history.lock().unwrap();
        history
            .get(&id)
            .and_then(|entries| entries.iter().find(|entry| entry.version == version))
            .cloned()
            .ok_or_else(|| WardError::NotFound("Patient version not found".into()))
    }

    async fn import_patients(
        &self,
        ctx: &CallerContext,
        patients: Vec<(Uuid, NewPatient)>,
    ) -> WardResult<Vec<ImportOutcome>> {
        ctx.require(Right::PatientsWrite)?;
        Ok(vec![ImportOutcome::AlreadyPresent; patients.len()])
    }

    /// Pages in id order like `list_patients`; the fake keeps no change times, so `since_opt`
    /// filters nothing.
    async fn export_patients(
        &self,
        ctx: &CallerContext,
        _since_opt: Option<DateTime<Utc>>,
        page: PageRequest,
    ) -> WardResult<PatientPage> {
        self.list_patients(ctx, page).await
    }

    async fn audit_events(&self, ctx: &CallerContext, _query: AuditQuery) -> WardResult<AuditPage> {
        ctx.require(Right::UsersAdmin)?;
        Ok(AuditPage {
            items: Vec::new(),
            next_cursor_opt: None,
        })
    }

    async fn check_ready(&self) -> WardResult<()> {
        Ok(())
    }
}

/// One known account, for the patient [`billed_patient_id`].
#[derive(Default)]
pub struct FakeBilling;

pub fn billed_patient_id() -> Uuid {
    Uuid::from_u128(42)
}

pub fn account_opened_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 10, 9, 30, 0).unwrap()
}

#[async_trait]
impl BillingApi for FakeBilling {
    async fn create_billing_account(
        &self,
        ctx: &CallerContext,
        _request: OpenAccountRequest,
    ) -> WardResult<BillingAccount> {
        ctx.require(Right::BillingWrite)?;
        Err(WardError::Unavailable("not in this fake".into()))
    }

    async fn get_account_by_patient(
        &self,
        ctx: &CallerContext,
        patient_id: Uuid,
    ) -> WardResult<BillingAccount> {
        ctx.require(Right::BillingRead)?;
        if patient_id != billed_patient_id() {
            return Err(WardError::NotFound("Billing account not found".into()));
        }
        Ok(BillingAccount {
            id: Uuid::from_u128(7),
            patient_id,
            status: AccountStatus::Active,
            opened_at: account_opened_at(),
            currency_opt: None,
            balance: 0,
        })
    }

    async fn create_invoice(
        &self,
        _ctx: &CallerContext,
        _invoice: NewInvoice,
    ) -> WardResult<Invoice> {
        Err(ward_core::WardError::Unavailable("not in this fake".into()))
    }
    async fn get_invoice(&self, _ctx: &CallerContext, _invoice_id: Uuid) -> WardResult<Invoice> {
        Err(ward_core::WardError::Unavailable("not in this fake".into()))
    }
    async fn list_invoices(
        &self,
        _ctx: &CallerContext,
        _query: InvoiceQuery,
    ) -> WardResult<InvoicePage> {
        Err(ward_core::WardError::Unavailable("not in this fake".into()))
    }
    async fn issue_invoice(&self, _ctx: &CallerContext, _invoice_id: Uuid) -> WardResult<Invoice> {
        Err(ward_core::WardError::Unavailable("not in this fake".into()))
    }
    async fn void_invoice(
        &self,
        _ctx: &CallerContext,
        _invoice_id: Uuid,
        _reason: String,
    ) -> WardResult<Invoice> {
        Err(ward_core::WardError::Unavailable("not in this fake".into()))
    }
    async fn record_payment(
        &self,
        _ctx: &CallerContext,
        _payment: NewPayment,
        _key: IdempotencyKey,
    ) -> WardResult<PaymentReceipt> {
        Err(ward_core::WardError::Unavailable("not in this fake".into()))
    }
    async fn get_payment(&self, _ctx: &CallerContext, _payment_id: Uuid) -> WardResult<Payment> {
        Err(ward_core::WardError::Unavailable("not in this fake".into()))
    }
    async fn refund_payment(
        &self,
        _ctx: &CallerContext,
        _payment_id: Uuid,
        _amount: i64,
        _key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Refund> {
        Err(ward_core::WardError::Unavailable("not in this fake".into()))
    }
    async fn post_adjustment(
        &self,
        _ctx: &CallerContext,
        _adjustment: NewAdjustment,
    ) -> WardResult<LedgerEntry> {
        Err(ward_core::WardError::Unavailable("not in this fake".into()))
    }
    async fn statement(
        &self,
        _ctx: &CallerContext,
        _patient_id: Uuid,
        _from_opt: Option<NaiveDate>,
        _to_opt: Option<NaiveDate>,
    ) -> WardResult<Statement> {
        Err(ward_core::WardError::Unavailable("not in this fake".into()))
    }
    async fn check_ready(&self) -> WardResult<()> {
        Ok(())
    }
}

/// Answers with fixed figures, or fails as a broken database would.
pub struct FakeAnalytics {
    pub fail_internally: bool,
}

#[async_trait]
impl AnalyticsApi for FakeAnalytics {
    async fn summary(&self, ctx: &CallerContext) -> WardResult<Summary> {
        ctx.require(Right::AnalyticsRead)?;
        if self.fail_internally {
            return Err(WardError::internal(
                "analytics database",
                "/data/secret.db is locked",
            ));
        }
        Ok(Summary {
            patients_registered: 15,
            patients_deleted: 1,
            patients_merged: 0,
            billing_accounts_opened: 15,
            active_patients: 14,
            events_by_type: BTreeMap::from([("PatientRegistered".to_string(), 15)]),
            registrations_by_day: vec![DailyCount {
                date: NaiveDate::from_ymd_opt(2024, 1, 10).unwrap(),
                count: 3,
            }],
            payments_by_method: BTreeMap::from([(
                "EUR".to_string(),
                BTreeMap::from([("card".to_string(), 2500)]),
            )]),
        })
    }

    /// One point per bucket start, each worth 1 (the real bucketing is tested in the module).
    async fn timeseries(
        &self,
        ctx: &CallerContext,
        query: TimeseriesQuery,
    ) -> WardResult<Timeseries> {
        ctx.require(Right::AnalyticsRead)?;
        let mut points = Vec::new();
        for start in query.interval().bucket_starts(query.from(), query.to()) {
            points.push(TimeseriesPoint { start, value: 1 });
        }
        Ok(Timeseries {
            metric: query.metric(),
            interval: query.interval(),
            currency_opt: query.currency_opt().cloned(),
            points,
        })
    }

    async fn receivables(
        &self,
        ctx: &CallerContext,
        query: ReceivablesQuery,
    ) -> WardResult<Receivables> {
        ctx.require(Right::AnalyticsRead)?;
        Ok(Receivables {
            currency_opt: query.currency_opt,
            as_of: query.as_of,
            buckets: AgingBuckets {
                days_0_30: 100,
                days_31_60: 0,
                days_61_90: 0,
                over_90: 5,
            },
        })
    }

    async fn check_ready(&self) -> WardResult<()> {
        Ok(())
    }
}

pub fn fakes(analytics_fails: bool) -> ward_gateway::ApiBackends {
    fakes_with_store(analytics_fails, Arc::new(FakePatients::default()))
}

/// The fakes over a patient store the test keeps a handle on.
pub fn fakes_with_store(
    analytics_fails: bool,
    patients: Arc<FakePatients>,
) -> ward_gateway::ApiBackends {
    ward_gateway::ApiBackends {
        auth: Arc::new(FakeAuth::default()),
        patients,
        billing: Arc::new(FakeBilling),
        analytics: Arc::new(FakeAnalytics {
            fail_internally: analytics_fails,
        }),
        token_check: Arc::new(check_token),
        token_narrow: fake_narrow(NarrowLog::default()),
    }
}

/// The fakes over an auth module and a narrowing log the test keeps handles on.
pub fn fakes_with_auth(auth: Arc<FakeAuth>, narrow_log: NarrowLog) -> ward_gateway::ApiBackends {
    ward_gateway::ApiBackends {
        auth,
        token_narrow: fake_narrow(narrow_log),
        ..fakes(false)
    }
}
