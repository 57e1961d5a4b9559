//! A migrated billing service on a fresh SQLite file or a throwaway PostgreSQL database, and
//! the requests the scenarios send.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{Days, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder, Statement};
use uuid::Uuid;
use ward_billing::BillingService;
use ward_bus::BillingApi;
use ward_bus::billing::{
    InvoiceInput, InvoiceLineInput, NewInvoice, NewPayment, OpenAccountRequest, PaymentInput,
};
use ward_bus::events::{EventLogHandle, decode_envelope};
use ward_bus::local_log::LocalEventLog;
use ward_bus::outbox::{OutboxRelay, entity as outbox};
use ward_bus::patients::IdempotencyKey;
use ward_bus::testsuite::{TestPostgres, sqlite_in, sqlite_url};
use ward_core::{CallerContext, Principal, UserRole};
use ward_proto::v1::EventEnvelope;

pub enum Backend {
    Sqlite,
    Postgres,
}

enum Cleanup {
    /// The SQLite database lives in the harness folder, removed in any case.
    Folder,
    Postgres(TestPostgres),
}

pub struct Harness {
    pub db: DatabaseConnection,
    pub service: Arc<BillingService>,
    relay: OutboxRelay,
    /// One billing user for the whole scenario, so idempotency keys are this caller's.
    pub ctx: CallerContext,
    cleanup: Cleanup,
    _folder: PathBuf,
}

impl Harness {
    pub async fn start(backend: Backend) -> Self {
        let folder = std::env::temp_dir().join(format!("ward-billing-money-{}", Uuid::new_v4()));
        let (db, cleanup) = match backend {
            Backend::Sqlite => (sqlite_in(&folder, "billing").await, Cleanup::Folder),
            Backend::Postgres => {
                let postgres = TestPostgres::create("billing", "billing").await;
                (postgres.db().clone(), Cleanup::Postgres(postgres))
            }
        };
        BillingService::migrate(&db).await.unwrap();
        // The relay is only here for its waker; events are read from the outbox table.
        let log: EventLogHandle = Arc::new(
            LocalEventLog::open(&sqlite_url(&folder, "events"))
                .await
                .unwrap(),
        );
        let relay = OutboxRelay::new("billing", db.clone(), log);
        let service = Arc::new(BillingService::new(db.clone(), relay.waker()));
        Self {
            db,
            service,
            relay,
            ctx: caller(UserRole::Billing),
            cleanup,
            _folder: folder,
        }
    }

    /// Drops the PostgreSQL database or removes the SQLite folder.
    pub async fn finish(self) {
        let _ = std::fs::remove_dir_all(&self._folder);
        match self.cleanup {
            Cleanup::Folder => {}
            Cleanup::Postgres(postgres) => postgres.drop_database().await,
        }
    }

    pub fn waker(&self) -> ward_bus::outbox::OutboxWaker {
        self.relay.waker()
    }

    /// Opens an account for a new patient and returns the patient's id.
    pub async fn open_account(&self) -> Uuid {
        let patient_id = Uuid::now_v7();
        let request = OpenAccountRequest {
            patient_id,
            name: "Ann Doe".into(),
            email: "ann@example.com".into(),
        };
        self.service
            .create_billing_account(&self.ctx, request)
            .await
            .unwrap();
        patient_id
    }

    /// Creates and issues an invoice of one line; returns its id.
    pub async fn issued_invoice(&self, patient_id: Uuid, total: i64) -> Uuid {
        let draft = self
            .service
            .create_invoice(&self.ctx, invoice(patient_id, "EUR", &[(1, total)]))
            .await
            .unwrap();
        self.service
            .issue_invoice(&self.ctx, draft.id)
            .await
            .unwrap();
        draft.id
    }

    pub async fn pay(&self, patient_id: Uuid, amount: i64, invoice_id_opt: Option<Uuid>) -> Uuid {
        let receipt = self
            .service
            .record_payment(
                &self.ctx,
                payment(patient_id, amount, invoice_id_opt),
                fresh_key(),
            )
            .await
            .unwrap();
        receipt.payment.id
    }

    pub async fn balance(&self, patient_id: Uuid) -> i64 {
        self.service
            .get_account_by_patient(&self.ctx, patient_id)
            .await
            .unwrap()
            .balance
    }

    /// The ledger's sum, by plain SQL rather than through the service.
    pub async fn ledger_sum(&self, patient_id: Uuid) -> i64 {
        let backend = self.db.get_database_backend();
        let sql = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS total FROM ledger_entries WHERE patient_id = $1";
        let sql = match backend {
            sea_orm::DbBackend::Postgres => sql.to_string(),
            _ => sql.replace("$1", "?"),
        };
        let statement = Statement::from_sql_and_values(backend, sql, [patient_id.into()]);
        let row = self.db.query_one_raw(statement).await.unwrap().unwrap();
        row.try_get("", "total").unwrap()
    }

    pub async fn num_rows(&self, table: &str) -> i64 {
        let statement = Statement::from_string(
            self.db.get_database_backend(),
            format!("SELECT COUNT(*) AS num FROM {table}"),
        );
        let row = self.db.query_one_raw(statement).await.unwrap().unwrap();
        row.try_get("", "num").unwrap()
    }

    /// Every event in the outbox, in the order enqueued.
    pub async fn events(&self) -> Vec<EventEnvelope> {
        let rows = outbox::Entity::find()
            .order_by_asc(outbox::Column::Seq)
            .all(&self.db)
            .await
            .unwrap();
        rows.iter()
            .map(|row| decode_envelope(&row.payload).unwrap())
            .collect()
    }

    /// The events of one type, decoded.
    pub async fn events_of<E: ward_bus::events::DomainEvent>(&self) -> Vec<E> {
        self.events()
            .await
            .iter()
            .filter(|envelope| envelope.event_type == E::EVENT_TYPE)
            .map(|envelope| ward_bus::events::decode_payload::<E>(envelope).unwrap())
            .collect()
    }
}

pub fn caller(role: UserRole) -> CallerContext {
    let principal = Principal::with_role(Uuid::now_v7(), format!("{role}@example.com"), role);
    CallerContext::authenticated(principal, "token", "req-money")
}

pub fn invoice(patient_id: Uuid, currency: &str, lines: &[(i64, i64)]) -> NewInvoice {
    let lines = lines
        .iter()
        .enumerate()
        .map(|(index, (quantity, unit_price))| InvoiceLineInput {
            code: Some(format!("C{index}")),
            description: Some(format!("service {index}")),
            quantity: Some(*quantity),
            unit_price: Some(*unit_price),
        })
        .collect();
    NewInvoice::parse(InvoiceInput {
        patient_id: Some(patient_id.to_string()),
        currency: Some(currency.into()),
        due_date: Some(ward_bus::patients::format_date(due_in(30))),
        lines: Some(lines),
    })
    .unwrap()
}

pub fn payment(patient_id: Uuid, amount: i64, invoice_id_opt: Option<Uuid>) -> NewPayment {
    payment_in(patient_id, amount, "EUR", invoice_id_opt)
}

pub fn payment_in(
    patient_id: Uuid,
    amount: i64,
    currency: &str,
    invoice_id_opt: Option<Uuid>,
) -> NewPayment {
    NewPayment::parse(PaymentInput {
        patient_id: Some(patient_id.to_string()),
        amount: Some(amount),
        currency: Some(currency.into()),
        method: Some("card".into()),
        reference: Some("pos-1".into()),
        invoice_id: invoice_id_opt.map(|id| id.to_string()),
    })
    .unwrap()
}

pub fn fresh_key() -> IdempotencyKey {
    IdempotencyKey::parse(&Uuid::new_v4().to_string()).unwrap()
}

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub fn due_in(num_days: u64) -> NaiveDate {
    today().checked_add_days(Days::new(num_days)).unwrap()
}
