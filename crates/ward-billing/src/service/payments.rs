//! Payments and refunds, each recorded once per `Idempotency-Key`.
//!
//! Every call locks the patient's account first, then looks for its key: a concurrent call with
//! the same key on the same account waits on the lock and then finds the key the first one
//! committed. Calls that race on one key without sharing an account (another patient in the
//! body) meet at the key's primary key instead; the loser retries once and, finding the
//! winner's key with another request hash, is `Unprocessable`.

use chrono::{Duration, Utc};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use ward_bus::billing::{
    Allocation, LedgerKind, NewPayment, Payment, PaymentMethod, PaymentReceipt, Refund,
};
use ward_bus::db::{db_error, is_unique_violation};
use ward_bus::events::{BILLING_TOPIC, PaymentRecorded, PaymentRefunded, envelope};
use ward_bus::outbox::enqueue;
use ward_bus::patients::{
    IDEMPOTENCY_KEY_REUSED_MESSAGE, IDEMPOTENCY_KEY_TTL_SECS, IdempotencyKey,
};
use ward_core::{CallerContext, Right, WardError, WardResult};

use super::invoices::{find_named_invoice, parse_status};
use super::ledger::{
    Posting, lock_account, now, post, require_billable, settle_currency, stored_currency,
};
use super::settlement::{
    allocate, allocated_to_invoice, allocations_of, deallocate, free_of, open_invoices,
    outstanding_of, refresh_invoice, refunded_of,
};
use super::{BillingService, PRODUCER, rfc3339};
use crate::entity::{idempotency_keys, payments, refunds};

pub(crate) const PAYMENT_NOT_FOUND: &str = "Payment not found";
const PAYMENT_OPERATION: &str = "payment";
const REFUND_OPERATION: &str = "refund";

/// What a key lookup found.
enum Remembered {
    /// The key is new; it is now recorded for `resource_id` in this transaction.
    Fresh,
    /// A previous call with this key and body made this payment or refund.
    Replay(Uuid),
    /// A concurrent call inserted the key first; this transaction is spoilt.
    Taken,
}

pub(super) async fn record_payment(
    service: &BillingService,
    ctx: &CallerContext,
    payment: NewPayment,
    key: IdempotencyKey,
) -> WardResult<PaymentReceipt> {
    ctx.require_for(Right::BillingWrite, &[payment.patient_id])?;
    let request_hash = payment_hash(&payment);
    for _attempt in 0..2 {
        let txn = service.begin_write().await?;
        let account = lock_account(&txn, payment.patient_id).await?;
        let payment_id = ward_core::id::new_id();
        let remembered = remember_key(
            &txn,
            ctx,
            PAYMENT_OPERATION,
            &key,
            &request_hash,
            payment_id,
        )
        .await?;
        match remembered {
            Remembered::Taken => continue,
            Remembered::Replay(first_id) => {
                let first = load_payment(&txn, first_id).await?;
                service.commit(txn).await?;
                return Ok(PaymentReceipt {
                    payment: first,
                    newly_recorded: false,
                });
            }
            Remembered::Fresh => {}
        }
        require_billable(&account)?;
        settle_currency(&txn, &account, &payment.currency).await?;
        let recorded = record_payment_in(&txn, ctx, payment_id, &payment).await?;
        service.commit_and_wake(txn).await?;
        tracing::info!(payment_id = %recorded.id, "recorded a payment");
        return Ok(PaymentReceipt {
            payment: recorded,
            newly_recorded: true,
        });
    }
    Err(WardError::internal(
        "recording a payment",
        "an idempotency key was taken but cannot be read",
    ))
}

async fn record_payment_in(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    payment_id: Uuid,
    payment: &NewPayment,
) -> WardResult<Payment> {
    let patient_id = payment.patient_id;
    let received_at = now();
    let row = payments::Model {
        id: payment_id,
        patient_id,
        amount: payment.amount,
        currency: payment.currency.as_str().to_string(),
        method: payment.method.as_str().to_string(),
        reference: payment.reference.clone(),
        received_at,
    };
    payments::Entity::insert(payments::ActiveModel::from(row))
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("recording a payment", error))?;
    post(
        txn,
        Posting {
            patient_id,
            at: received_at,
            kind: LedgerKind::Payment,
            amount: -payment.amount,
            currency: &payment.currency,
            reference: payment.reference.clone(),
            invoice_id_opt: payment.invoice_id_opt,
            payment_id_opt: Some(payment_id),
        },
    )
    .await?;
    // The named invoice first, then the oldest open ones; the rest stays credit.
    let mut targets = Vec::new();
    if let Some(invoice_id) = payment.invoice_id_opt {
        targets.push(find_named_invoice(txn, invoice_id, patient_id).await?);
    }
    for open in open_invoices(txn, patient_id).await? {
        if Some(open.id) != payment.invoice_id_opt {
            targets.push(open);
        }
    }
    let mut remaining = payment.amount;
    let mut balances = Vec::new();
    for invoice in targets {
        if remaining == 0 {
            break;
        }
        let status = parse_status(&invoice)?;
        if !matches!(
            status,
            ward_bus::billing::InvoiceStatus::Issued
                | ward_bus::billing::InvoiceStatus::PartiallyPaid
        ) {
            continue;
        }
        let allocated = allocated_to_invoice(txn, invoice.id).await?;
        let applied = remaining.min(outstanding_of(&invoice, allocated));
        if applied == 0 {
            continue;
        }
        allocate(txn, payment_id, invoice.id, applied).await?;
        remaining -= applied;
        balances.push(refresh_invoice(txn, invoice.id).await?);
    }
    let payload = PaymentRecorded {
        payment_id: payment_id.to_string(),
        patient_id: patient_id.to_string(),
        currency: payment.currency.as_str().to_string(),
        amount: payment.amount,
        method: payment.method.as_str().to_string(),
        reference: payment.reference.clone(),
        recorded_at: rfc3339(received_at),
        invoices: balances,
    };
    let event = envelope(
        PRODUCER,
        patient_id,
        ctx.request_id(),
        received_at,
        &payload,
    );
    enqueue(txn, BILLING_TOPIC, &event).await?;
    load_payment(txn, payment_id).await
}

pub(super) async fn get_payment(
    service: &BillingService,
    ctx: &CallerContext,
    payment_id: Uuid,
) -> WardResult<Payment> {
    ctx.require(Right::BillingRead)?;
    let payment = load_payment(service.db(), payment_id).await?;
    ctx.require_for(Right::BillingRead, &[payment.patient_id])?;
    Ok(payment)
}

/// See [`ward_bus::BillingApi::refund_payment`]: the refund takes the payment's free money
/// first, then takes back what it paid on invoices, the newest-issued first.
pub(super) async fn refund_payment(
    service: &BillingService,
    ctx: &CallerContext,
    payment_id: Uuid,
    amount: i64,
    key_opt: Option<IdempotencyKey>,
) -> WardResult<Refund> {
    ctx.require(Right::BillingWrite)?;
    let request_hash = refund_hash(payment_id, amount);
    for _attempt in 0..2 {
        let txn = service.begin_write().await?;
        let payment = find_payment(&txn, payment_id).await?;
        ctx.require_for(Right::BillingWrite, &[payment.patient_id])?;
        lock_account(&txn, payment.patient_id).await?;
        let refund_id = ward_core::id::new_id();
        if let Some(key) = &key_opt {
            let remembered =
                remember_key(&txn, ctx, REFUND_OPERATION, key, &request_hash, refund_id).await?;
            match remembered {
                Remembered::Taken => continue,
                Remembered::Replay(first_id) => {
                    let first = load_refund(&txn, first_id).await?;
                    service.commit(txn).await?;
                    return Ok(first);
                }
                Remembered::Fresh => {}
            }
        }
        let refund = refund_in(&txn, ctx, refund_id, &payment, amount).await?;
        service.commit_and_wake(txn).await?;
        tracing::info!(refund_id = %refund.id, %payment_id, "refunded a payment");
        return Ok(refund);
    }
    Err(WardError::internal(
        "refunding a payment",
        "an idempotency key was taken but cannot be read",
    ))
}

async fn refund_in(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    refund_id: Uuid,
    payment: &payments::Model,
    amount: i64,
) -> WardResult<Refund> {
    let refundable = payment.amount - refunded_of(txn, payment.id).await?;
    if amount < 1 || amount > refundable {
        return Err(WardError::invalid_field(
            "amount",
            format!("amount must be between 1 and {refundable}, what is left of the payment"),
        ));
    }
    let currency = stored_currency(&payment.currency)?;
    let free = free_of(txn, payment).await?;
    let mut to_take_back = amount - free.min(amount);
    let mut balances = Vec::new();
    for allocation in allocations_of(txn, payment.id).await? {
        if to_take_back == 0 {
            break;
        }
        let taken = to_take_back.min(allocation.amount);
        deallocate(txn, &allocation, taken).await?;
        to_take_back -= taken;
        balances.push(refresh_invoice(txn, allocation.invoice_id).await?);
    }
    debug_assert_eq!(to_take_back, 0);
    let refunded_at = now();
    let row = refunds::Model {
        id: refund_id,
        payment_id: payment.id,
        patient_id: payment.patient_id,
        amount,
        currency: currency.as_str().to_string(),
        refunded_at,
    };
    refunds::Entity::insert(refunds::ActiveModel::from(row.clone()))
        .exec_without_returning(txn)
        .await
        .map_err(|error| db_error("recording a refund", error))?;
    post(
        txn,
        Posting {
            patient_id: payment.patient_id,
            at: refunded_at,
            kind: LedgerKind::Refund,
            amount,
            currency: &currency,
            reference: format!("refund of payment {}", payment.id),
            invoice_id_opt: None,
            payment_id_opt: Some(payment.id),
        },
    )
    .await?;
    let payload = PaymentRefunded {
        refund_id: refund_id.to_string(),
        payment_id: payment.id.to_string(),
        patient_id: payment.patient_id.to_string(),
        currency: currency.as_str().to_string(),
        amount,
        method: payment.method.clone(),
        refunded_at: rfc3339(refunded_at),
        invoices: balances,
    };
    let event = envelope(
        PRODUCER,
        payment.patient_id,
        ctx.request_id(),
        refunded_at,
        &payload,
    );
    enqueue(txn, BILLING_TOPIC, &event).await?;
    refund_from_row(row)
}

/// Looks `key` up for this caller and operation; when it is new, records it for `resource_id`.
async fn remember_key(
    txn: &DatabaseTransaction,
    ctx: &CallerContext,
    operation: &str,
    key: &IdempotencyKey,
    request_hash: &str,
    resource_id: Uuid,
) -> WardResult<Remembered> {
    let user_id = ctx.actor();
    // Expired keys are free again. Clearing only this caller's keeps the table to a day of
    // keys per active caller without two payments on different accounts contending for the
    // same expired rows (on PostgreSQL such a pair could deadlock).
    let cutoff = Utc::now() - Duration::seconds(IDEMPOTENCY_KEY_TTL_SECS);
    idempotency_keys::Entity::delete_many()
        .filter(idempotency_keys::Column::UserId.eq(user_id.clone()))
        .filter(idempotency_keys::Column::CreatedAt.lt(cutoff))
        .exec(txn)
        .await
        .map_err(|error| db_error("clearing expired idempotency keys", error))?;
    let remembered_opt = idempotency_keys::Entity::find_by_id((
        user_id.clone(),
        operation.to_string(),
        key.to_string(),
    ))
    .one(txn)
    .await
    .map_err(|error| db_error("reading an idempotency key", error))?;
    if let Some(remembered) = remembered_opt {
        if remembered.request_hash != request_hash {
            return Err(WardError::Unprocessable(
                IDEMPOTENCY_KEY_REUSED_MESSAGE.into(),
            ));
        }
        return Ok(Remembered::Replay(remembered.resource_id));
    }
    let row = idempotency_keys::ActiveModel {
        user_id: ActiveValue::Set(user_id),
        operation: ActiveValue::Set(operation.to_string()),
        key: ActiveValue::Set(key.to_string()),
        request_hash: ActiveValue::Set(request_hash.to_string()),
        resource_id: ActiveValue::Set(resource_id),
        created_at: ActiveValue::Set(Utc::now()),
    };
    match idempotency_keys::Entity::insert(row)
        .exec_without_returning(txn)
        .await
    {
        Ok(_) => Ok(Remembered::Fresh),
        Err(error) if is_unique_violation(&error) => Ok(Remembered::Taken),
        Err(error) => Err(db_error("recording an idempotency key", error)),
    }
}

/// Hex SHA-256 of the parsed payment, so whitespace, case and key order in the JSON do not
/// matter.
fn payment_hash(payment: &NewPayment) -> String {
    let invoice_id = payment
        .invoice_id_opt
        .map(|id| id.to_string())
        .unwrap_or_default();
    let canonical = [
        payment.patient_id.to_string(),
        payment.amount.to_string(),
        payment.currency.as_str().to_string(),
        payment.method.as_str().to_string(),
        payment.reference.clone(),
        invoice_id,
    ]
    .join("\u{1f}");
    format!("{:x}", Sha256::digest(canonical.as_bytes()))
}

fn refund_hash(payment_id: Uuid, amount: i64) -> String {
    let canonical = format!("{payment_id}\u{1f}{amount}");
    format!("{:x}", Sha256::digest(canonical.as_bytes()))
}

async fn find_payment(db: &impl ConnectionTrait, payment_id: Uuid) -> WardResult<payments::Model> {
    let row_opt = payments::Entity::find_by_id(payment_id)
        .one(db)
        .await
        .map_err(|error| db_error("reading a payment", error))?;
    row_opt.ok_or_else(|| WardError::NotFound(PAYMENT_NOT_FOUND.into()))
}

/// The payment with its allocations and refunds as they are now.
pub(crate) async fn load_payment(
    db: &impl ConnectionTrait,
    payment_id: Uuid,
) -> WardResult<Payment> {
    let row = find_payment(db, payment_id).await?;
    let Some(method) = PaymentMethod::parse(&row.method) else {
        return Err(WardError::Internal(format!(
            "payment {} has an unknown method {:?}",
            row.id, row.method
        )));
    };
    let mut allocations: Vec<Allocation> = allocations_of(db, payment_id)
        .await?
        .into_iter()
        .map(|row| Allocation {
            invoice_id: row.invoice_id,
            amount: row.amount,
        })
        .collect();
    // Oldest invoice first reads naturally; the helper returns the refund order.
    allocations.reverse();
    Ok(Payment {
        id: row.id,
        patient_id: row.patient_id,
        amount: row.amount,
        currency: stored_currency(&row.currency)?,
        method,
        reference: row.reference,
        received_at: row.received_at,
        allocations,
        refunded: refunded_of(db, payment_id).await?,
    })
}

async fn load_refund(db: &impl ConnectionTrait, refund_id: Uuid) -> WardResult<Refund> {
    let row_opt = refunds::Entity::find_by_id(refund_id)
        .one(db)
        .await
        .map_err(|error| db_error("reading a refund", error))?;
    let row = row_opt.ok_or_else(|| WardError::Internal("a remembered refund is gone".into()))?;
    refund_from_row(row)
}

fn refund_from_row(row: refunds::Model) -> WardResult<Refund> {
    Ok(Refund {
        id: row.id,
        payment_id: row.payment_id,
        patient_id: row.patient_id,
        amount: row.amount,
        currency: stored_currency(&row.currency)?,
        refunded_at: row.refunded_at,
    })
}

#[cfg(test)]
mod tests {
    use ward_bus::billing::{Currency, PaymentMethod};

    use super::*;

    fn payment(amount: i64) -> NewPayment {
        NewPayment {
            patient_id: Uuid::nil(),
            amount,
            currency: Currency::parse("EUR", "currency").unwrap(),
            method: PaymentMethod::Card,
            reference: "ref".into(),
            invoice_id_opt: None,
        }
    }

    #[test]
    fn the_hash_tells_payments_apart() {
        let first = payment_hash(&payment(100));
        assert_eq!(first.len(), 64);
        assert_eq!(first, payment_hash(&payment(100)));
        assert_ne!(first, payment_hash(&payment(101)));
        assert_ne!(refund_hash(Uuid::nil(), 1), refund_hash(Uuid::nil(), 2));
    }
}
