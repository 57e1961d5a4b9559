//! Keeping figures from patient and billing events.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue, DatabaseConnection, DatabaseTransaction, EntityTrait, Insert};
use ward_bus::analytics::Metric;
use ward_bus::consumer::{Consumer, EventHandler};
use ward_bus::db::db_error;
use ward_bus::events::{
    BILLING_TOPIC, BillingAccountOpened, DomainEvent, EventLogHandle, InvoiceBalance,
    InvoiceIssued, InvoiceVoided, LedgerAdjusted, PATIENTS_TOPIC, PatientDeleted, PatientMerged,
    PatientPurged, PatientRegistered, PatientRestored, PatientUnmerged, PatientUpdated,
    PaymentRecorded, PaymentRefunded, decode_payload,
};
use ward_core::{WardError, WardResult};
use ward_proto::v1::EventEnvelope;

use crate::entity::{daily_registrations, event_counts};
use crate::figures::{
    self, PatientState, add_daily_amount, add_method_amount, apply_invoice_balance, event_day,
    payment_method, remove_receivable, set_patient_state,
};

/// The consumer name under which analytics records its offsets and processed events.
pub(crate) const CONSUMER_NAME: &str = "analytics";

/// Keeps the figures: every applied event counted by type, registrations by registered date,
/// each patient's state (for the active count), and the money figures and receivables from
/// billing events.
///
/// Runs inside the consumer's transaction, so the figures move exactly when the event is
/// recorded as processed, and a redelivered event (same id) changes nothing. Every day comes
/// from the event itself, so a replay of the log gives the same figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct FiguresHandler;

#[async_trait]
impl EventHandler for FiguresHandler {
    #[tracing::instrument(name = "analytics.handle_event", skip_all, fields(event_type = %envelope.event_type))]
    async fn handle(&self, txn: &DatabaseTransaction, envelope: &EventEnvelope) -> WardResult<()> {
        let event_type = envelope.event_type.as_str();
        if event_type.trim().is_empty() {
            return Err(WardError::invalid_field(
                "event_type",
                "an event needs a type",
            ));
        }
        // Known types are decoded and checked before anything is written, so an unusable event
        // (`InvalidArgument`) is skipped whole rather than half applied (the consumer also rolls
        // its savepoint back). Types this build does not know are counted by name only.
        if event_type == PatientRegistered::EVENT_TYPE {
            let registered = decode_payload::<PatientRegistered>(envelope)?;
            let patient_id = figures::patient_id(&registered.patient_id, "patient_id")?;
            let date = registration_date(&registered, envelope)?;
            increment_daily_registrations(txn, date).await?;
            // A re-import after a delete registers the same id again: active once more.
            set_patient_state(txn, &patient_id, PatientState::Active).await?;
        } else if event_type == PatientUpdated::EVENT_TYPE {
            decode_payload::<PatientUpdated>(envelope)?;
        } else if event_type == PatientDeleted::EVENT_TYPE {
            let deleted = decode_payload::<PatientDeleted>(envelope)?;
            let patient_id = figures::patient_id(&deleted.patient_id, "patient_id")?;
            set_patient_state(txn, &patient_id, PatientState::Deleted).await?;
        } else if event_type == PatientRestored::EVENT_TYPE {
            let restored = decode_payload::<PatientRestored>(envelope)?;
            let patient_id = figures::patient_id(&restored.patient_id, "patient_id")?;
            set_patient_state(txn, &patient_id, PatientState::Active).await?;
        } else if event_type == PatientMerged::EVENT_TYPE {
            let merged = decode_payload::<PatientMerged>(envelope)?;
            let source_id = figures::patient_id(&merged.source_patient_id, "source_patient_id")?;
            set_patient_state(txn, &source_id, PatientState::Merged).await?;
        } else if event_type == PatientUnmerged::EVENT_TYPE {
            let unmerged = decode_payload::<PatientUnmerged>(envelope)?;
            let source_id = figures::patient_id(&unmerged.source_patient_id, "source_patient_id")?;
            set_patient_state(txn, &source_id, PatientState::Active).await?;
        } else if event_type == PatientPurged::EVENT_TYPE {
            let purged = decode_payload::<PatientPurged>(envelope)?;
            let patient_id = figures::patient_id(&purged.patient_id, "patient_id")?;
            set_patient_state(txn, &patient_id, PatientState::Purged).await?;
        } else if event_type == BillingAccountOpened::EVENT_TYPE {
            decode_payload::<BillingAccountOpened>(envelope)?;
        } else if event_type == InvoiceIssued::EVENT_TYPE {
            let issued = decode_payload::<InvoiceIssued>(envelope)?;
            apply_invoice_issued(txn, &issued, envelope).await?;
        } else if event_type == InvoiceVoided::EVENT_TYPE {
            let voided = decode_payload::<InvoiceVoided>(envelope)?;
            apply_invoice_voided(txn, &voided, envelope).await?;
        } else if event_type == PaymentRecorded::EVENT_TYPE {
            let recorded = decode_payload::<PaymentRecorded>(envelope)?;
            apply_payment_recorded(txn, &recorded, envelope).await?;
        } else if event_type == PaymentRefunded::EVENT_TYPE {
            let refunded = decode_payload::<PaymentRefunded>(envelope)?;
            apply_payment_refunded(txn, &refunded, envelope).await?;
        } else if event_type == LedgerAdjusted::EVENT_TYPE {
            let adjusted = decode_payload::<LedgerAdjusted>(envelope)?;
            let patient_id = figures::patient_id(&adjusted.patient_id, "patient_id")?;
            let currency = figures::currency(&adjusted.currency)?;
            // Adjustments and write-offs are neither invoiced nor collected; they only change
            // what is still owed on the invoices they name.
            for balance in &adjusted.invoices {
                apply_invoice_balance(txn, &patient_id, &currency, balance).await?;
            }
        }
        increment_event_count(txn, event_type).await
    }
}

/// `InvoiceIssued`: the total is invoiced on the issue day; the invoice is owed as its balance
/// says (credit may already have paid part of it).
async fn apply_invoice_issued(
    txn: &DatabaseTransaction,
    issued: &InvoiceIssued,
    envelope: &EventEnvelope,
) -> WardResult<()> {
    let patient_id = figures::patient_id(&issued.patient_id, "patient_id")?;
    let currency = figures::currency(&issued.currency)?;
    let total = figures::amount(issued.total, "total")?;
    let day = event_day(&issued.issued_at, "issued_at", envelope)?;
    add_daily_amount(txn, Metric::Invoiced, day, &currency, total).await?;
    match &issued.balance {
        Some(balance) => apply_invoice_balance(txn, &patient_id, &currency, balance).await,
        // Billing always sends it; without one, the whole total is owed from the issue day.
        None => {
            let balance = InvoiceBalance {
                invoice_id: issued.invoice_id.clone(),
                outstanding: total,
                issued_on: ward_bus::patients::format_date(day),
                due_date: String::new(),
            };
            apply_invoice_balance(txn, &patient_id, &currency, &balance).await
        }
    }
}

/// `InvoiceVoided`: the total leaves the invoiced figure on the void day, and nothing is owed on
/// the invoice any more (the event carries no balance: a void invoice owes nothing).
async fn apply_invoice_voided(
    txn: &DatabaseTransaction,
    voided: &InvoiceVoided,
    envelope: &EventEnvelope,
) -> WardResult<()> {
    let currency = figures::currency(&voided.currency)?;
    let total = figures::amount(voided.total, "total")?;
    let day = event_day(&voided.voided_at, "voided_at", envelope)?;
    let invoice_id = voided.invoice_id.trim();
    if invoice_id.is_empty() {
        return Err(WardError::invalid_field(
            "invoice_id",
            "a voided invoice needs an id",
        ));
    }
    add_daily_amount(txn, Metric::Invoiced, day, &currency, -total).await?;
    remove_receivable(txn, invoice_id).await
}

/// `PaymentRecorded`: collected on the day it was recorded, by method; the invoices it paid owe
/// what their balances say.
async fn apply_payment_recorded(
    txn: &DatabaseTransaction,
    recorded: &PaymentRecorded,
    envelope: &EventEnvelope,
) -> WardResult<()> {
    let patient_id = figures::patient_id(&recorded.patient_id, "patient_id")?;
    let currency = figures::currency(&recorded.currency)?;
    let amount = figures::amount(recorded.amount, "amount")?;
    let method = payment_method(&recorded.method)?;
    let day = event_day(&recorded.recorded_at, "recorded_at", envelope)?;
    add_daily_amount(txn, Metric::Collected, day, &currency, amount).await?;
    add_method_amount(txn, &currency, &method, amount).await?;
    for balance in &recorded.invoices {
        apply_invoice_balance(txn, &patient_id, &currency, balance).await?;
    }
    Ok(())
}

/// `PaymentRefunded`: the mirror of [`apply_payment_recorded`], on the refund day; the invoices
/// it reopened owe again.
async fn apply_payment_refunded(
    txn: &DatabaseTransaction,
    refunded: &PaymentRefunded,
    envelope: &EventEnvelope,
) -> WardResult<()> {
    let patient_id = figures::patient_id(&refunded.patient_id, "patient_id")?;
    let currency = figures::currency(&refunded.currency)?;
    let amount = figures::amount(refunded.amount, "amount")?;
    let method = payment_method(&refunded.method)?;
    let day = event_day(&refunded.refunded_at, "refunded_at", envelope)?;
    add_daily_amount(txn, Metric::Collected, day, &currency, -amount).await?;
    add_method_amount(txn, &currency, &method, -amount).await?;
    for balance in &refunded.invoices {
        apply_invoice_balance(txn, &patient_id, &currency, balance).await?;
    }
    Ok(())
}

/// Returns the consumer that feeds patient and billing events to a [`FiguresHandler`].
pub fn events_consumer(db: DatabaseConnection, log: EventLogHandle) -> Consumer {
    Consumer::new(
        CONSUMER_NAME,
        db,
        log,
        &[PATIENTS_TOPIC, BILLING_TOPIC],
        Arc::new(FiguresHandler),
    )
}

/// The day a registration counts for: the patient's registered date, else the day the event
/// occurred (an older producer may have sent no date).
fn registration_date(
    registered: &PatientRegistered,
    envelope: &EventEnvelope,
) -> WardResult<NaiveDate> {
    if let Ok(date) = NaiveDate::parse_from_str(registered.registered_date.trim(), "%Y-%m-%d") {
        return Ok(date);
    }
    tracing::warn!(event_id = %envelope.event_id, "registered date unreadable; counting the event's day");
    match DateTime::parse_from_rfc3339(&envelope.occurred_at) {
        Ok(occurred_at) => Ok(occurred_at.to_utc().date_naive()),
        Err(_) => Err(WardError::invalid_field(
            "registered_date",
            "neither the registered date nor the event time is a date",
        )),
    }
}

/// Adds one to the count of `event_type`.
async fn increment_event_count(txn: &DatabaseTransaction, event_type: &str) -> WardResult<()> {
    event_count_upsert(event_type)
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("counting an event", error))?;
    Ok(())
}

/// Adds one to the registrations of `date`.
async fn increment_daily_registrations(
    txn: &DatabaseTransaction,
    date: NaiveDate,
) -> WardResult<()> {
    daily_registrations_upsert(date)
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("counting a registration", error))?;
    Ok(())
}

/// `INSERT … ON CONFLICT (event_type) DO UPDATE SET count = event_counts.count + 1`: one
/// statement, portable to SQLite and PostgreSQL, and safe if two consumers ever race.
fn event_count_upsert(event_type: &str) -> Insert<event_counts::ActiveModel> {
    let row = event_counts::ActiveModel {
        event_type: ActiveValue::Set(event_type.to_string()),
        count: ActiveValue::Set(1),
    };
    // Qualified with the table name: the stored row's count, not the proposed one.
    let stored_count = Expr::col((event_counts::Entity, event_counts::Column::Count));
    event_counts::Entity::insert(row).on_conflict(
        OnConflict::column(event_counts::Column::EventType)
            .value(event_counts::Column::Count, stored_count.add(1))
            .to_owned(),
    )
}

/// The same upsert as [`event_count_upsert`], keyed by registered date.
fn daily_registrations_upsert(date: NaiveDate) -> Insert<daily_registrations::ActiveModel> {
    let row = daily_registrations::ActiveModel {
        date: ActiveValue::Set(date),
        count: ActiveValue::Set(1),
    };
    let stored_count = Expr::col((
        daily_registrations::Entity,
        daily_registrations::Column::Count,
    ));
    daily_registrations::Entity::insert(row).on_conflict(
        OnConflict::column(daily_registrations::Column::Date)
            .value(daily_registrations::Column::Count, stored_count.add(1))
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;
    use ward_bus::events::envelope;

    use super::*;

    fn registered_on(registered_date: &str) -> (PatientRegistered, EventEnvelope) {
        let payload = PatientRegistered {
            patient_id: Uuid::nil().to_string(),
            name: "n".into(),
            email: "e@example.com".into(),
            registered_date: registered_date.into(),
            version: 1,
        };
        let occurred_at = Utc.with_ymd_and_hms(2024, 3, 5, 23, 59, 0).unwrap();
        let sent = envelope("patients", Uuid::nil(), "", occurred_at, &payload);
        (payload, sent)
    }

    #[test]
    fn registration_date_prefers_the_registered_date() {
        let (payload, sent) = registered_on("2024-01-10");
        let date = registration_date(&payload, &sent).unwrap();
        assert_eq!(date, NaiveDate::from_ymd_opt(2024, 1, 10).unwrap());
    }

    #[test]
    fn registration_date_falls_back_to_the_event_day() {
        let (payload, sent) = registered_on("10/01/2024");
        let date = registration_date(&payload, &sent).unwrap();
        assert_eq!(date, NaiveDate::from_ymd_opt(2024, 3, 5).unwrap());
    }

    #[test]
    fn upserts_add_to_the_stored_count_on_postgres_too() {
        use sea_orm::{DbBackend, QueryTrait};

        let sql = event_count_upsert("PatientRegistered")
            .build(DbBackend::Postgres)
            .to_string();
        assert!(
            sql.ends_with(
                r#"ON CONFLICT ("event_type") DO UPDATE SET "count" = "event_counts"."count" + 1"#
            ),
            "{sql}"
        );
        let date = NaiveDate::from_ymd_opt(2024, 1, 10).unwrap();
        let sql = daily_registrations_upsert(date)
            .build(DbBackend::Postgres)
            .to_string();
        assert!(
            sql.ends_with(
                r#"ON CONFLICT ("date") DO UPDATE SET "count" = "daily_registrations"."count" + 1"#
            ),
            "{sql}"
        );
    }

    #[test]
    fn registration_without_any_date_is_unusable() {
        let (payload, mut sent) = registered_on("");
        sent.occurred_at = "yesterday".into();
        let error = registration_date(&payload, &sent).unwrap_err();
        assert_eq!(error.error_code(), ward_core::ErrorCode::InvalidArgument);
    }
}
