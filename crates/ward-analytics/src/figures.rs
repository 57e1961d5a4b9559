//! The write side of the figures: each function changes one table inside the consumer's
//! transaction, with one statement that is portable to SQLite and PostgreSQL.

use chrono::{DateTime, NaiveDate};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue, ColumnTrait, DatabaseTransaction, EntityTrait, Insert, QueryFilter};
use ward_bus::analytics::{CurrencyCode, Metric};
use ward_bus::billing::PaymentMethod;
use ward_bus::db::db_error;
use ward_bus::events::InvoiceBalance;
use ward_core::{WardError, WardResult};
use ward_proto::v1::EventEnvelope;

use crate::entity::{daily_amounts, method_amounts, patient_states, receivables};

/// The largest amount one event may move, in minor units (10^15: far beyond any invoice, and
/// far from overflowing a sum of many).
const AMOUNT_MAX: i64 = 1_000_000_000_000_000;

/// Where a patient stands; only `Active` counts as an active patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatientState {
    Active,
    /// Soft-deleted; may be restored.
    Deleted,
    /// Merged into another patient; may be unmerged.
    Merged,
    /// Erased for good.
    Purged,
}

impl PatientState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PatientState::Active => "active",
            PatientState::Deleted => "deleted",
            PatientState::Merged => "merged",
            PatientState::Purged => "purged",
        }
    }
}

/// A patient event's subject, from the payload; blank is unusable.
pub(crate) fn patient_id(raw: &str, field: &str) -> WardResult<String> {
    let patient_id = raw.trim();
    if patient_id.is_empty() {
        return Err(WardError::invalid_field(field, format!("{field} is empty")));
    }
    Ok(patient_id.to_string())
}

/// Records that `patient_id` now stands at `state`. Setting (not counting) the state makes every
/// transition exact: the active count is the number of `active` rows, so a purge after a delete,
/// or a second delete, subtracts nothing more.
pub(crate) async fn set_patient_state(
    txn: &DatabaseTransaction,
    patient_id: &str,
    state: PatientState,
) -> WardResult<()> {
    let row = patient_states::ActiveModel {
        patient_id: ActiveValue::Set(patient_id.to_string()),
        state: ActiveValue::Set(state.as_str().to_string()),
    };
    patient_states::Entity::insert(row)
        .on_conflict(
            OnConflict::column(patient_states::Column::PatientId)
                .update_column(patient_states::Column::State)
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("recording a patient's state", error))?;
    Ok(())
}

/// The UTC day of an event's own timestamp field (`issued_at`, `recorded_at`, …), else of the
/// envelope's `occurred_at`: never the day it is processed, so a replay lands on the same days.
pub(crate) fn event_day(raw: &str, field: &str, envelope: &EventEnvelope) -> WardResult<NaiveDate> {
    let stamp = if raw.trim().is_empty() {
        envelope.occurred_at.trim()
    } else {
        raw.trim()
    };
    match DateTime::parse_from_rfc3339(stamp) {
        Ok(instant) => Ok(instant.to_utc().date_naive()),
        Err(_) => Err(WardError::invalid_field(
            field,
            format!("{field} must be an RFC 3339 instant"),
        )),
    }
}

pub(crate) fn currency(raw: &str) -> WardResult<CurrencyCode> {
    CurrencyCode::parse(raw, "currency")
}

/// An amount an event moves: `0..=AMOUNT_MAX` minor units.
pub(crate) fn amount(raw: i64, field: &str) -> WardResult<i64> {
    if !(0..=AMOUNT_MAX).contains(&raw) {
        return Err(WardError::invalid_field(
            field,
            format!("{field} must be between 0 and {AMOUNT_MAX} minor units"),
        ));
    }
    Ok(raw)
}

/// A payment method as billing names it. A name this build does not know yet is kept as
/// given (lower-case letters and `_`), so money is never dropped for the name it came with.
pub(crate) fn payment_method(raw: &str) -> WardResult<String> {
    let method = raw.trim();
    if let Some(known) = PaymentMethod::parse(method) {
        return Ok(known.as_str().to_string());
    }
    let is_token = !method.is_empty()
        && method.len() <= 32
        && method.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    if !is_token {
        return Err(WardError::invalid_field(
            "method",
            "method must be a payment method name",
        ));
    }
    Ok(method.to_string())
}

/// Adds `amount` (either sign) to `metric` on `day` in `currency`.
pub(crate) async fn add_daily_amount(
    txn: &DatabaseTransaction,
    metric: Metric,
    day: NaiveDate,
    currency: &CurrencyCode,
    amount: i64,
) -> WardResult<()> {
    debug_assert!(metric.is_money());
    daily_amount_upsert(metric, day, currency, amount)
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("adding to a daily amount", error))?;
    Ok(())
}

fn daily_amount_upsert(
    metric: Metric,
    day: NaiveDate,
    currency: &CurrencyCode,
    amount: i64,
) -> Insert<daily_amounts::ActiveModel> {
    let row = daily_amounts::ActiveModel {
        metric: ActiveValue::Set(metric.as_str().to_string()),
        day: ActiveValue::Set(day),
        currency: ActiveValue::Set(currency.as_str().to_string()),
        amount: ActiveValue::Set(amount),
    };
    // Qualified with the table name: the stored row's amount, not the proposed one.
    let stored = Expr::col((daily_amounts::Entity, daily_amounts::Column::Amount));
    daily_amounts::Entity::insert(row).on_conflict(
        OnConflict::columns([
            daily_amounts::Column::Metric,
            daily_amounts::Column::Day,
            daily_amounts::Column::Currency,
        ])
        .value(daily_amounts::Column::Amount, stored.add(amount))
        .to_owned(),
    )
}

/// Adds `amount` (either sign) to the payments taken by `method` in `currency`.
pub(crate) async fn add_method_amount(
    txn: &DatabaseTransaction,
    currency: &CurrencyCode,
    method: &str,
    amount: i64,
) -> WardResult<()> {
    let row = method_amounts::ActiveModel {
        currency: ActiveValue::Set(currency.as_str().to_string()),
        method: ActiveValue::Set(method.to_string()),
        amount: ActiveValue::Set(amount),
    };
    let stored = Expr::col((method_amounts::Entity, method_amounts::Column::Amount));
    method_amounts::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                method_amounts::Column::Currency,
                method_amounts::Column::Method,
            ])
            .value(method_amounts::Column::Amount, stored.add(amount))
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("adding to a payment method's amount", error))?;
    Ok(())
}

/// Keeps an invoice's receivable as the event says it now stands: a row while something is
/// owed, none once it is paid (outstanding 0). The last event about an invoice wins; one
/// patient's events arrive in order, and an invoice belongs to one patient.
pub(crate) async fn apply_invoice_balance(
    txn: &DatabaseTransaction,
    patient_id: &str,
    currency: &CurrencyCode,
    balance: &InvoiceBalance,
) -> WardResult<()> {
    let invoice_id = balance.invoice_id.trim();
    if invoice_id.is_empty() {
        return Err(WardError::invalid_field(
            "invoice_id",
            "an invoice balance needs an invoice id",
        ));
    }
    let outstanding = amount(balance.outstanding, "outstanding")?;
    if outstanding == 0 {
        return remove_receivable(txn, invoice_id).await;
    }
    let Ok(issued_on) = NaiveDate::parse_from_str(balance.issued_on.trim(), "%Y-%m-%d") else {
        return Err(WardError::invalid_field(
            "issued_on",
            "issued_on must be a date in yyyy-MM-dd format",
        ));
    };
    let row = receivables::ActiveModel {
        invoice_id: ActiveValue::Set(invoice_id.to_string()),
        patient_id: ActiveValue::Set(patient_id.to_string()),
        currency: ActiveValue::Set(currency.as_str().to_string()),
        issued_on: ActiveValue::Set(issued_on),
        outstanding: ActiveValue::Set(outstanding),
    };
    receivables::Entity::insert(row)
        .on_conflict(
            OnConflict::column(receivables::Column::InvoiceId)
                .update_columns([
                    receivables::Column::PatientId,
                    receivables::Column::Currency,
                    receivables::Column::IssuedOn,
                    receivables::Column::Outstanding,
                ])
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("recording a receivable", error))?;
    Ok(())
}

/// Forgets an invoice's receivable (paid or void).
pub(crate) async fn remove_receivable(
    txn: &DatabaseTransaction,
    invoice_id: &str,
) -> WardResult<()> {
    receivables::Entity::delete_many()
        .filter(receivables::Column::InvoiceId.eq(invoice_id))
        .exec(txn)
        .await
        .map_err(|error| db_error("removing a receivable", error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use sea_orm::{DbBackend, QueryTrait};
    use uuid::Uuid;
    use ward_bus::events::{PaymentRecorded, envelope};

    use super::*;

    #[test]
    fn the_day_is_the_events_own_utc_day() {
        let occurred_at = Utc.with_ymd_and_hms(2024, 3, 5, 12, 0, 0).unwrap();
        let sent = envelope(
            "billing",
            Uuid::nil(),
            "",
            occurred_at,
            &PaymentRecorded::default(),
        );
        let day = event_day("2024-02-29T23:30:00-02:00", "recorded_at", &sent).unwrap();
        assert_eq!(day, NaiveDate::from_ymd_opt(2024, 3, 1).unwrap());
        let fallback = event_day("", "recorded_at", &sent).unwrap();
        assert_eq!(fallback, NaiveDate::from_ymd_opt(2024, 3, 5).unwrap());
        let error = event_day("last tuesday", "recorded_at", &sent).unwrap_err();
        assert_eq!(error.field_errors()[0].field, "recorded_at");
    }

    #[test]
    fn methods_and_amounts_are_checked() {
        assert_eq!(payment_method(" card ").unwrap(), "card");
        assert_eq!(payment_method("crypto_wallet").unwrap(), "crypto_wallet");
        assert!(payment_method("").is_err());
        assert!(payment_method("DROP TABLE").is_err());
        assert_eq!(amount(0, "total").unwrap(), 0);
        assert!(amount(-1, "total").is_err());
        assert!(amount(AMOUNT_MAX + 1, "total").is_err());
    }

    #[test]
    fn the_daily_amount_upsert_adds_to_the_stored_amount() {
        let day = NaiveDate::from_ymd_opt(2024, 1, 10).unwrap();
        let eur = CurrencyCode::parse("EUR", "currency").unwrap();
        let sql = daily_amount_upsert(Metric::Collected, day, &eur, -250)
            .build(DbBackend::Postgres)
            .to_string();
        assert!(
            sql.ends_with(r#"DO UPDATE SET "amount" = "daily_amounts"."amount" + -250"#)
                || sql.ends_with(r#"DO UPDATE SET "amount" = "daily_amounts"."amount" + (-250)"#),
            "{sql}"
        );
    }
}
