//! The account row every money operation locks first, the append-only ledger, and the sums
//! balances are derived from.

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, SimpleExpr};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;
use ward_bus::billing::{AccountStatus, Currency, LedgerEntry, LedgerKind};
use ward_bus::db::db_error;
use ward_bus::events::InvoiceBalance;
use ward_bus::patients::format_date;
use ward_core::{WardError, WardResult};

use crate::entity::{billing_accounts, ledger_entries};

pub(crate) const ACCOUNT_NOT_FOUND: &str = "Billing account not found";

/// Returns the current instant as stored: PostgreSQL keeps microseconds, so truncating here makes
/// a returned value equal a re-read.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Reads the patient's account and, on PostgreSQL, locks its row until the transaction ends
/// (`SELECT ... FOR UPDATE`), so money operations on one account run one at a time. SQLite
/// ignores the clause: its IMMEDIATE write transactions already run one at a time.
pub(crate) async fn lock_account(
    txn: &DatabaseTransaction,
    patient_id: Uuid,
) -> WardResult<billing_accounts::Model> {
    let account_opt = billing_accounts::Entity::find()
        .filter(billing_accounts::Column::PatientId.eq(patient_id))
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(|error| db_error("locking a billing account", error))?;
    account_opt.ok_or_else(|| WardError::NotFound(ACCOUNT_NOT_FOUND.into()))
}

/// Fails with `Conflict` when the account was merged away: its patient is a duplicate and the
/// surviving record's account is the one that bills.
pub(crate) fn require_billable(account: &billing_accounts::Model) -> WardResult<()> {
    if account.status == AccountStatus::Merged.as_str() {
        return Err(WardError::AlreadyExists(
            "the patient was merged into another record; bill that record instead".into(),
        ));
    }
    Ok(())
}

/// Fixes the account's currency on its first money movement, or checks `currency` is it.
pub(crate) async fn settle_currency(
    txn: &DatabaseTransaction,
    account: &billing_accounts::Model,
    currency: &Currency,
) -> WardResult<()> {
    match &account.currency {
        Some(account_currency) if account_currency == currency.as_str() => Ok(()),
        Some(account_currency) => Err(WardError::invalid_field(
            "currency",
            format!("currency must be {account_currency}, the currency of this billing account"),
        )),
        None => {
            billing_accounts::Entity::update_many()
                .col_expr(
                    billing_accounts::Column::Currency,
                    Expr::value(currency.as_str()),
                )
                .filter(billing_accounts::Column::Id.eq(account.id))
                .exec(txn)
                .await
                .map_err(|error| db_error("fixing a billing account's currency", error))?;
            Ok(())
        }
    }
}

/// One entry to append.
pub(crate) struct Posting<'a> {
    pub(crate) patient_id: Uuid,
    pub(crate) at: DateTime<Utc>,
    pub(crate) kind: LedgerKind,
    pub(crate) amount: i64,
    pub(crate) currency: &'a Currency,
    pub(crate) reference: String,
    pub(crate) invoice_id_opt: Option<Uuid>,
    pub(crate) payment_id_opt: Option<Uuid>,
}

/// Appends one entry; the only write the ledger ever sees.
pub(crate) async fn post(
    txn: &DatabaseTransaction,
    posting: Posting<'_>,
) -> WardResult<LedgerEntry> {
    let entry = LedgerEntry {
        id: ward_core::id::new_id(),
        patient_id: posting.patient_id,
        at: posting.at,
        kind: posting.kind,
        amount: posting.amount,
        currency: posting.currency.clone(),
        reference: posting.reference,
        invoice_id_opt: posting.invoice_id_opt,
        payment_id_opt: posting.payment_id_opt,
    };
    let row = ledger_entries::ActiveModel {
        id: ActiveValue::Set(entry.id),
        patient_id: ActiveValue::Set(entry.patient_id),
        at: ActiveValue::Set(entry.at),
        kind: ActiveValue::Set(entry.kind.as_str().to_string()),
        amount: ActiveValue::Set(entry.amount),
        currency: ActiveValue::Set(entry.currency.as_str().to_string()),
        reference: ActiveValue::Set(entry.reference.clone()),
        invoice_id: ActiveValue::Set(entry.invoice_id_opt),
        payment_id: ActiveValue::Set(entry.payment_id_opt),
    };
    ledger_entries::Entity::insert(row)
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("posting a ledger entry", error))?;
    Ok(entry)
}

/// `CAST(COALESCE(SUM(column), 0) AS BIGINT)`: PostgreSQL sums a `bigint` into a `numeric`,
/// which would not decode as `i64`.
pub(crate) fn sum_of(column: impl sea_orm::sea_query::IntoColumnRef) -> SimpleExpr {
    let sum: SimpleExpr = Func::sum(Expr::col(column)).into();
    let coalesced: SimpleExpr = Func::coalesce([sum, Expr::val(0i64)]).into();
    Func::cast_as(coalesced, Alias::new("BIGINT")).into()
}

/// The patient's balance: the sum of every ledger entry, optionally only those before `before`.
pub(crate) async fn balance_of(
    db: &impl ConnectionTrait,
    patient_id: Uuid,
    before_opt: Option<DateTime<Utc>>,
) -> WardResult<i64> {
    let mut query = ledger_entries::Entity::find()
        .select_only()
        .expr_as(sum_of(ledger_entries::Column::Amount), "balance")
        .filter(ledger_entries::Column::PatientId.eq(patient_id));
    if let Some(before) = before_opt {
        query = query.filter(ledger_entries::Column::At.lt(before));
    }
    let balance_opt: Option<i64> = query
        .into_tuple()
        .one(db)
        .await
        .map_err(|error| db_error("summing a billing ledger", error))?;
    Ok(balance_opt.unwrap_or(0))
}

/// The patient's entries with `from <= at < until`, in the order they were posted.
pub(crate) async fn entries_between(
    db: &impl ConnectionTrait,
    patient_id: Uuid,
    from_opt: Option<DateTime<Utc>>,
    until_opt: Option<DateTime<Utc>>,
) -> WardResult<Vec<LedgerEntry>> {
    let mut query =
        ledger_entries::Entity::find().filter(ledger_entries::Column::PatientId.eq(patient_id));
    if let Some(from) = from_opt {
        query = query.filter(ledger_entries::Column::At.gte(from));
    }
    if let Some(until) = until_opt {
        query = query.filter(ledger_entries::Column::At.lt(until));
    }
    let rows = query
        .order_by_asc(ledger_entries::Column::At)
        .order_by_asc(ledger_entries::Column::Id)
        .all(db)
        .await
        .map_err(|error| db_error("reading a billing ledger", error))?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        entries.push(entry_from_row(row)?);
    }
    Ok(entries)
}

fn entry_from_row(row: ledger_entries::Model) -> WardResult<LedgerEntry> {
    let Some(kind) = LedgerKind::parse(&row.kind) else {
        return Err(WardError::Internal(format!(
            "ledger entry {} has an unknown kind {:?}",
            row.id, row.kind
        )));
    };
    Ok(LedgerEntry {
        id: row.id,
        patient_id: row.patient_id,
        at: row.at,
        kind,
        amount: row.amount,
        currency: stored_currency(&row.currency)?,
        reference: row.reference,
        invoice_id_opt: row.invoice_id,
        payment_id_opt: row.payment_id,
    })
}

/// A currency read back from the database, where only parsed codes are written.
pub(crate) fn stored_currency(raw: &str) -> WardResult<Currency> {
    Currency::parse(raw, "currency")
        .map_err(|_| WardError::Internal(format!("a stored currency {raw:?} is not ISO 4217")))
}

/// The event form of an invoice's new outstanding amount.
pub(crate) fn invoice_balance(
    invoice_id: Uuid,
    outstanding: i64,
    issued_at_opt: Option<DateTime<Utc>>,
    due_date: NaiveDate,
) -> InvoiceBalance {
    InvoiceBalance {
        invoice_id: invoice_id.to_string(),
        outstanding,
        issued_on: issued_at_opt
            .map(|issued_at| format_date(issued_at.date_naive()))
            .unwrap_or_default(),
        due_date: format_date(due_date),
    }
}
