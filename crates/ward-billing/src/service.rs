//! [`BillingService`]: billing accounts over sea-orm, one per patient, each with an append-only
//! ledger that every balance and statement is summed from.
//!
//! Every money operation is one write transaction that first locks the patient's account row
//! (see [`ledger::lock_account`]), writes its rows and ledger entries, and enqueues its event in
//! the outbox; the relay is woken after the commit.

mod invoices;
mod ledger;
mod payments;
mod settlement;
mod statement;

use async_trait::async_trait;
use chrono::NaiveDate;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;
use ward_bus::BillingApi;
use ward_bus::billing::{AccountStatus, BillingAccount, OpenAccountRequest};
use ward_bus::billing::{
    Invoice, InvoicePage, InvoiceQuery, LedgerEntry, NewAdjustment, NewInvoice, NewPayment,
    Payment, PaymentReceipt, Refund, Statement,
};
use ward_bus::db::{db_error, is_unique_violation, ping};
use ward_bus::events::{BILLING_TOPIC, BillingAccountOpened, envelope};
use ward_bus::outbox::{OutboxWaker, enqueue};
use ward_bus::patients::IdempotencyKey;
use ward_core::{CallerContext, Right, WardError, WardResult};

use crate::entity::billing_accounts;
use crate::migration::Migrator;

/// The producer name written into the envelopes billing emits.
const PRODUCER: &str = "billing";

/// Implements [`BillingApi`] over the billing database.
pub struct BillingService {
    db: DatabaseConnection,
    outbox: OutboxWaker,
}

impl BillingService {
    /// Returns a service over a migrated database; `outbox` is woken after each commit that
    /// enqueued an event (from [`ward_bus::outbox::OutboxRelay::waker`]).
    pub fn new(db: DatabaseConnection, outbox: OutboxWaker) -> Self {
        Self { db, outbox }
    }

    fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Starts a write transaction (IMMEDIATE on SQLite: see [`ward_bus::db::write_transaction`]).
    async fn begin_write(&self) -> WardResult<DatabaseTransaction> {
        self.db
            .begin_with_options(ward_bus::db::write_transaction())
            .await
            .map_err(|error| db_error("starting a billing transaction", error))
    }

    async fn commit(&self, txn: DatabaseTransaction) -> WardResult<()> {
        txn.commit()
            .await
            .map_err(|error| db_error("committing a billing transaction", error))
    }

    /// Commits a transaction that enqueued an event, then wakes the relay to send it.
    async fn commit_and_wake(&self, txn: DatabaseTransaction) -> WardResult<()> {
        self.commit(txn).await?;
        self.outbox.wake();
        Ok(())
    }

    /// Applies the billing migrations; running it again is a no-op.
    pub async fn migrate(db: &DatabaseConnection) -> WardResult<()> {
        Migrator::up(db, None)
            .await
            .map_err(|error| db_error("migrating the billing database", error))
    }
}

#[async_trait]
impl BillingApi for BillingService {
    #[tracing::instrument(name = "billing.create_billing_account", skip_all)]
    async fn create_billing_account(
        &self,
        ctx: &CallerContext,
        request: OpenAccountRequest,
    ) -> WardResult<BillingAccount> {
        ctx.require_for(Right::BillingWrite, &[request.patient_id])?;
        let txn = self
            .db
            .begin_with_options(ward_bus::db::write_transaction())
            .await
            .map_err(|error| db_error("starting a billing transaction", error))?;
        match open_account_in(&txn, &request, ctx.request_id()).await {
            Ok((account, newly_opened)) => {
                txn.commit()
                    .await
                    .map_err(|error| db_error("committing a billing account", error))?;
                if newly_opened {
                    self.outbox.wake();
                }
                Ok(account)
            }
            Err(WardError::AlreadyExists(_)) => {
                // Lost a race the conflict clause did not absorb: the winner's account is the
                // patient's one account, read once this transaction is gone.
                txn.rollback()
                    .await
                    .map_err(|error| db_error("rolling back a billing transaction", error))?;
                let account_opt = find_account_in(&self.db, request.patient_id).await?;
                account_opt.ok_or_else(|| {
                    WardError::Internal(
                        "a billing account insert conflicted, yet no account exists".into(),
                    )
                })
            }
            Err(error) => Err(error),
        }
    }

    #[tracing::instrument(name = "billing.get_account_by_patient", skip_all)]
    async fn get_account_by_patient(
        &self,
        ctx: &CallerContext,
        patient_id: Uuid,
    ) -> WardResult<BillingAccount> {
        ctx.require_for(Right::BillingRead, &[patient_id])?;
        let account_opt = find_account_in(&self.db, patient_id).await?;
        let mut account =
            account_opt.ok_or_else(|| WardError::NotFound(ledger::ACCOUNT_NOT_FOUND.into()))?;
        account.balance = ledger::balance_of(&self.db, patient_id, None).await?;
        Ok(account)
    }

    #[tracing::instrument(name = "billing.create_invoice", skip_all)]
    async fn create_invoice(
        &self,
        ctx: &CallerContext,
        invoice: NewInvoice,
    ) -> WardResult<Invoice> {
        invoices::create_invoice(self, ctx, invoice).await
    }

    #[tracing::instrument(name = "billing.get_invoice", skip_all)]
    async fn get_invoice(&self, ctx: &CallerContext, invoice_id: Uuid) -> WardResult<Invoice> {
        invoices::get_invoice(self, ctx, invoice_id).await
    }

    #[tracing::instrument(name = "billing.list_invoices", skip_all)]
    async fn list_invoices(
        &self,
        ctx: &CallerContext,
        query: InvoiceQuery,
    ) -> WardResult<InvoicePage> {
        invoices::list_invoices(self, ctx, query).await
    }

    #[tracing::instrument(name = "billing.issue_invoice", skip_all)]
    async fn issue_invoice(&self, ctx: &CallerContext, invoice_id: Uuid) -> WardResult<Invoice> {
        invoices::issue_invoice(self, ctx, invoice_id).await
    }

    #[tracing::instrument(name = "billing.void_invoice", skip_all)]
    async fn void_invoice(
        &self,
        ctx: &CallerContext,
        invoice_id: Uuid,
        reason: String,
    ) -> WardResult<Invoice> {
        invoices::void_invoice(self, ctx, invoice_id, reason).await
    }

    #[tracing::instrument(name = "billing.record_payment", skip_all)]
    async fn record_payment(
        &self,
        ctx: &CallerContext,
        payment: NewPayment,
        key: IdempotencyKey,
    ) -> WardResult<PaymentReceipt> {
        payments::record_payment(self, ctx, payment, key).await
    }

    #[tracing::instrument(name = "billing.get_payment", skip_all)]
    async fn get_payment(&self, ctx: &CallerContext, payment_id: Uuid) -> WardResult<Payment> {
        payments::get_payment(self, ctx, payment_id).await
    }

    #[tracing::instrument(name = "billing.refund_payment", skip_all)]
    async fn refund_payment(
        &self,
        ctx: &CallerContext,
        payment_id: Uuid,
        amount: i64,
        key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Refund> {
        payments::refund_payment(self, ctx, payment_id, amount, key_opt).await
    }

    #[tracing::instrument(name = "billing.post_adjustment", skip_all)]
    async fn post_adjustment(
        &self,
        ctx: &CallerContext,
        adjustment: NewAdjustment,
    ) -> WardResult<LedgerEntry> {
        statement::post_adjustment(self, ctx, adjustment).await
    }

    #[tracing::instrument(name = "billing.statement", skip_all)]
    async fn statement(
        &self,
        ctx: &CallerContext,
        patient_id: Uuid,
        from_opt: Option<NaiveDate>,
        to_opt: Option<NaiveDate>,
    ) -> WardResult<Statement> {
        statement::statement(self, ctx, patient_id, from_opt, to_opt).await
    }

    #[tracing::instrument(name = "billing.check_ready", skip_all)]
    async fn check_ready(&self) -> WardResult<()> {
        ping(&self.db, "billing").await
    }
}

/// Opens the patient's account inside `txn` and enqueues `BillingAccountOpened`, or returns the
/// account already open. The flag is true when this call opened it.
///
/// The insert comes first (`ON CONFLICT (patient_id) DO NOTHING`), then the read: a transaction
/// whose first statement writes takes SQLite's write lock up front (waiting on the busy timeout)
/// instead of failing a read-to-write upgrade, and on PostgreSQL a conflict does not abort the
/// transaction, which matters inside the consumer's savepoint. Any other unique violation maps to
/// `AlreadyExists`.
pub(crate) async fn open_account_in(
    txn: &impl ConnectionTrait,
    request: &OpenAccountRequest,
    request_id: &str,
) -> WardResult<(BillingAccount, bool)> {
    // PostgreSQL keeps microseconds; truncating here makes the returned value equal a re-read.
    let opened_at = Utc::now().trunc_subsecs(6);
    let account_id = ward_core::id::new_id();
    let row = billing_accounts::ActiveModel {
        id: ActiveValue::Set(account_id),
        patient_id: ActiveValue::Set(request.patient_id),
        status: ActiveValue::Set(AccountStatus::Active.as_str().to_string()),
        opened_at: ActiveValue::Set(opened_at),
        patient_name: ActiveValue::Set(request.name.clone()),
        patient_email: ActiveValue::Set(request.email.clone()),
        currency: ActiveValue::Set(None),
    };
    let num_inserted = billing_accounts::Entity::insert(row)
        .on_conflict(
            OnConflict::column(billing_accounts::Column::PatientId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                WardError::AlreadyExists(
                    "a billing account is already open for this patient".into(),
                )
            } else {
                db_error("opening a billing account", error)
            }
        })?;
    if num_inserted == 0 {
        let existing_opt = find_account_in(txn, request.patient_id).await?;
        let existing = existing_opt.ok_or_else(|| {
            WardError::Internal("a billing account insert conflicted, yet no account exists".into())
        })?;
        return Ok((existing, false));
    }
    let account = BillingAccount {
        id: account_id,
        patient_id: request.patient_id,
        status: AccountStatus::Active,
        opened_at,
        currency_opt: None,
        balance: 0,
    };
    let payload = BillingAccountOpened {
        account_id: account.id.to_string(),
        patient_id: account.patient_id.to_string(),
        opened_at: rfc3339(account.opened_at),
    };
    let event = envelope(
        PRODUCER,
        account.patient_id,
        request_id,
        opened_at,
        &payload,
    );
    enqueue(txn, BILLING_TOPIC, &event).await?;
    tracing::info!(account_id = %account.id, "opened a billing account");
    Ok((account, true))
}

/// Sets the status of the patient's account, if it has one (a merge of a patient whose
/// account was never opened changes nothing).
pub(crate) async fn set_account_status(
    txn: &sea_orm::DatabaseTransaction,
    patient_id: Uuid,
    status: AccountStatus,
) -> WardResult<()> {
    billing_accounts::Entity::update_many()
        .col_expr(
            billing_accounts::Column::Status,
            sea_orm::sea_query::Expr::value(status.as_str()),
        )
        .filter(billing_accounts::Column::PatientId.eq(patient_id))
        .exec(txn)
        .await
        .map_err(|error| db_error("setting a billing account's status", error))?;
    Ok(())
}

/// Returns the patient's account, if one is open, with its currency; its balance is left 0
/// (summing the ledger is the caller's choice).
async fn find_account_in(
    db: &impl ConnectionTrait,
    patient_id: Uuid,
) -> WardResult<Option<BillingAccount>> {
    let row_opt = billing_accounts::Entity::find()
        .filter(billing_accounts::Column::PatientId.eq(patient_id))
        .one(db)
        .await
        .map_err(|error| db_error("reading a billing account", error))?;
    match row_opt {
        Some(row) => Ok(Some(account_from_row(row)?)),
        None => Ok(None),
    }
}

fn account_from_row(row: billing_accounts::Model) -> WardResult<BillingAccount> {
    let Some(status) = AccountStatus::parse(&row.status) else {
        return Err(WardError::Internal(format!(
            "billing account {} has an unknown status {:?}",
            row.id, row.status
        )));
    };
    let currency_opt = match &row.currency {
        Some(raw) => Some(ledger::stored_currency(raw)?),
        None => None,
    };
    Ok(BillingAccount {
        id: row.id,
        patient_id: row.patient_id,
        status,
        opened_at: row.opened_at,
        currency_opt,
        balance: 0,
    })
}

pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_with_microseconds() {
        let at = DateTime::parse_from_rfc3339("2024-01-10T08:30:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc3339(at.trunc_subsecs(6)), "2024-01-10T08:30:00.123456Z");
    }

    #[test]
    fn unknown_status_is_an_internal_error() {
        let row = billing_accounts::Model {
            id: Uuid::nil(),
            patient_id: Uuid::nil(),
            status: "FROZEN".into(),
            opened_at: Utc::now(),
            patient_name: "n".into(),
            patient_email: "e@example.com".into(),
            currency: None,
        };
        assert!(matches!(account_from_row(row), Err(WardError::Internal(_))));
    }
}
