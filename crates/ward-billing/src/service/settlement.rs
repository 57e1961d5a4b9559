//! What is applied where: payment allocations, the account's credit, and the invoice status
//! that follows from them. Unlike the ledger these rows change; they never move the balance.

use std::collections::HashMap;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;
use ward_bus::billing::InvoiceStatus;
use ward_bus::db::db_error;
use ward_bus::events::InvoiceBalance;
use ward_core::WardResult;

use super::invoices::{invoice_from_row, parse_status};
use super::ledger::{invoice_balance, sum_of};
use crate::entity::{invoices, payment_allocations, payments, refunds};

/// What is allocated to each of `invoice_ids` now (absent: nothing).
pub(crate) async fn allocated_to_invoices(
    db: &impl sea_orm::ConnectionTrait,
    invoice_ids: &[Uuid],
) -> WardResult<HashMap<Uuid, i64>> {
    if invoice_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, i64)> = payment_allocations::Entity::find()
        .select_only()
        .column(payment_allocations::Column::InvoiceId)
        .expr_as(sum_of(payment_allocations::Column::Amount), "allocated")
        .filter(payment_allocations::Column::InvoiceId.is_in(invoice_ids.iter().copied()))
        .group_by(payment_allocations::Column::InvoiceId)
        .into_tuple()
        .all(db)
        .await
        .map_err(|error| db_error("summing invoice allocations", error))?;
    Ok(rows.into_iter().collect())
}

pub(crate) async fn allocated_to_invoice(
    db: &impl sea_orm::ConnectionTrait,
    invoice_id: Uuid,
) -> WardResult<i64> {
    let allocated = allocated_to_invoices(db, &[invoice_id]).await?;
    Ok(allocated.get(&invoice_id).copied().unwrap_or(0))
}

/// What is still owed on an issued invoice given what is allocated to it.
pub(crate) fn outstanding_of(invoice: &invoices::Model, allocated: i64) -> i64 {
    (invoice.total - allocated - invoice.written_off).max(0)
}

/// The status of an issued invoice with `paid` settled on it.
pub(crate) fn settled_status(total: i64, paid: i64) -> InvoiceStatus {
    if paid >= total {
        InvoiceStatus::Paid
    } else if paid == 0 {
        InvoiceStatus::Issued
    } else {
        InvoiceStatus::PartiallyPaid
    }
}

/// Brings an issued invoice's stored status in step with what is settled on it now, and returns
/// its new outstanding amount for the event.
pub(crate) async fn refresh_invoice(
    txn: &DatabaseTransaction,
    invoice_id: Uuid,
) -> WardResult<InvoiceBalance> {
    let invoice = invoices::Entity::find_by_id(invoice_id)
        .one(txn)
        .await
        .map_err(|error| db_error("reading an invoice", error))?
        .ok_or_else(|| ward_core::WardError::Internal("a settled invoice is gone".into()))?;
    let allocated = allocated_to_invoice(txn, invoice_id).await?;
    let current = parse_status(&invoice)?;
    let status = settled_status(invoice.total, allocated + invoice.written_off);
    debug_assert!(allocated + invoice.written_off <= invoice.total);
    if status != current {
        invoices::Entity::update_many()
            .col_expr(invoices::Column::Status, Expr::value(status.as_str()))
            .filter(invoices::Column::Id.eq(invoice_id))
            .exec(txn)
            .await
            .map_err(|error| db_error("updating an invoice's status", error))?;
    }
    let view = invoice_from_row(invoice, allocated)?;
    Ok(invoice_balance(
        view.id,
        outstanding_of_view(view.total, view.paid),
        view.issued_at_opt,
        view.due_date,
    ))
}

fn outstanding_of_view(total: i64, paid: i64) -> i64 {
    (total - paid).max(0)
}

/// Adds `amount` (> 0) of `payment_id` to `invoice_id`.
pub(crate) async fn allocate(
    txn: &DatabaseTransaction,
    payment_id: Uuid,
    invoice_id: Uuid,
    amount: i64,
) -> WardResult<()> {
    debug_assert!(amount > 0);
    let existing_opt = payment_allocations::Entity::find_by_id((payment_id, invoice_id))
        .one(txn)
        .await
        .map_err(|error| db_error("reading an allocation", error))?;
    let result = match existing_opt {
        Some(existing) => payment_allocations::Entity::update_many()
            .col_expr(
                payment_allocations::Column::Amount,
                Expr::value(existing.amount + amount),
            )
            .filter(payment_allocations::Column::PaymentId.eq(payment_id))
            .filter(payment_allocations::Column::InvoiceId.eq(invoice_id))
            .exec(txn)
            .await
            .map(|_| ()),
        None => payment_allocations::Entity::insert(payment_allocations::ActiveModel {
            payment_id: ActiveValue::Set(payment_id),
            invoice_id: ActiveValue::Set(invoice_id),
            amount: ActiveValue::Set(amount),
        })
        .exec_without_returning(txn)
        .await
        .map(|_| ()),
    };
    result.map_err(|error| db_error("allocating a payment", error))
}

/// Takes `amount` (> 0, at most what is allocated) of `payment_id` back from `invoice_id`.
pub(crate) async fn deallocate(
    txn: &DatabaseTransaction,
    allocation: &payment_allocations::Model,
    amount: i64,
) -> WardResult<()> {
    debug_assert!(amount > 0 && amount <= allocation.amount);
    let remaining = allocation.amount - amount;
    let result = if remaining == 0 {
        payment_allocations::Entity::delete_many()
            .filter(payment_allocations::Column::PaymentId.eq(allocation.payment_id))
            .filter(payment_allocations::Column::InvoiceId.eq(allocation.invoice_id))
            .exec(txn)
            .await
            .map(|_| ())
    } else {
        payment_allocations::Entity::update_many()
            .col_expr(payment_allocations::Column::Amount, Expr::value(remaining))
            .filter(payment_allocations::Column::PaymentId.eq(allocation.payment_id))
            .filter(payment_allocations::Column::InvoiceId.eq(allocation.invoice_id))
            .exec(txn)
            .await
            .map(|_| ())
    };
    result.map_err(|error| db_error("freeing a payment allocation", error))
}

/// Frees everything allocated to a voided invoice: the money becomes credit.
pub(crate) async fn free_invoice(txn: &DatabaseTransaction, invoice_id: Uuid) -> WardResult<()> {
    payment_allocations::Entity::delete_many()
        .filter(payment_allocations::Column::InvoiceId.eq(invoice_id))
        .exec(txn)
        .await
        .map_err(|error| db_error("freeing a voided invoice's allocations", error))?;
    Ok(())
}

/// The patient's issued and partly paid invoices, oldest issue first.
pub(crate) async fn open_invoices(
    txn: &DatabaseTransaction,
    patient_id: Uuid,
) -> WardResult<Vec<invoices::Model>> {
    invoices::Entity::find()
        .filter(invoices::Column::PatientId.eq(patient_id))
        .filter(invoices::Column::Status.is_in([
            InvoiceStatus::Issued.as_str(),
            InvoiceStatus::PartiallyPaid.as_str(),
        ]))
        .order_by_asc(invoices::Column::IssuedAt)
        .order_by_asc(invoices::Column::Id)
        .all(txn)
        .await
        .map_err(|error| db_error("reading open invoices", error))
}

/// What a payment has refunded so far.
pub(crate) async fn refunded_of(
    db: &impl sea_orm::ConnectionTrait,
    payment_id: Uuid,
) -> WardResult<i64> {
    let refunded_opt: Option<i64> = refunds::Entity::find()
        .select_only()
        .expr_as(sum_of(refunds::Column::Amount), "refunded")
        .filter(refunds::Column::PaymentId.eq(payment_id))
        .into_tuple()
        .one(db)
        .await
        .map_err(|error| db_error("summing a payment's refunds", error))?;
    Ok(refunded_opt.unwrap_or(0))
}

/// A payment's allocations now, the newest-issued invoice first (the order a refund takes
/// them back in).
pub(crate) async fn allocations_of(
    db: &impl sea_orm::ConnectionTrait,
    payment_id: Uuid,
) -> WardResult<Vec<payment_allocations::Model>> {
    let allocations = payment_allocations::Entity::find()
        .filter(payment_allocations::Column::PaymentId.eq(payment_id))
        .all(db)
        .await
        .map_err(|error| db_error("reading a payment's allocations", error))?;
    if allocations.is_empty() {
        return Ok(allocations);
    }
    let invoice_ids: Vec<Uuid> = allocations.iter().map(|row| row.invoice_id).collect();
    let issue_order: Vec<(Uuid, Option<chrono::DateTime<chrono::Utc>>)> = invoices::Entity::find()
        .select_only()
        .column(invoices::Column::Id)
        .column(invoices::Column::IssuedAt)
        .filter(invoices::Column::Id.is_in(invoice_ids))
        .into_tuple()
        .all(db)
        .await
        .map_err(|error| db_error("reading allocated invoices", error))?;
    let issued_at_by_id: HashMap<Uuid, _> = issue_order.into_iter().collect();
    let mut sorted = allocations;
    sorted.sort_by(|left, right| {
        let left_key = (issued_at_by_id.get(&left.invoice_id), left.invoice_id);
        let right_key = (issued_at_by_id.get(&right.invoice_id), right.invoice_id);
        right_key.cmp(&left_key)
    });
    Ok(sorted)
}

/// Each of the patient's payments that still has free money (received, not refunded, not
/// allocated), oldest first, with that amount: the account's credit.
pub(crate) async fn credit_by_payment(
    txn: &DatabaseTransaction,
    patient_id: Uuid,
) -> WardResult<Vec<(Uuid, i64)>> {
    let rows = payments::Entity::find()
        .filter(payments::Column::PatientId.eq(patient_id))
        .order_by_asc(payments::Column::ReceivedAt)
        .order_by_asc(payments::Column::Id)
        .all(txn)
        .await
        .map_err(|error| db_error("reading payments", error))?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Two grouped sums instead of two queries per payment.
    let refunded_by_payment: HashMap<Uuid, i64> = refunds::Entity::find()
        .select_only()
        .column(refunds::Column::PaymentId)
        .expr_as(sum_of(refunds::Column::Amount), "refunded")
        .filter(refunds::Column::PatientId.eq(patient_id))
        .group_by(refunds::Column::PaymentId)
        .into_tuple::<(Uuid, i64)>()
        .all(txn)
        .await
        .map_err(|error| db_error("summing refunds", error))?
        .into_iter()
        .collect();
    let payment_ids: Vec<Uuid> = rows.iter().map(|payment| payment.id).collect();
    let allocated_by_payment: HashMap<Uuid, i64> = payment_allocations::Entity::find()
        .select_only()
        .column(payment_allocations::Column::PaymentId)
        .expr_as(sum_of(payment_allocations::Column::Amount), "allocated")
        .filter(payment_allocations::Column::PaymentId.is_in(payment_ids))
        .group_by(payment_allocations::Column::PaymentId)
        .into_tuple::<(Uuid, i64)>()
        .all(txn)
        .await
        .map_err(|error| db_error("summing payment allocations", error))?
        .into_iter()
        .collect();
    let mut credit = Vec::new();
    for payment in rows {
        let refunded = refunded_by_payment.get(&payment.id).copied().unwrap_or(0);
        let allocated = allocated_by_payment.get(&payment.id).copied().unwrap_or(0);
        let free = payment.amount - refunded - allocated;
        debug_assert!(free >= 0, "payment {} is over-applied", payment.id);
        if free > 0 {
            credit.push((payment.id, free));
        }
    }
    Ok(credit)
}

/// What of a payment is neither refunded nor allocated.
pub(crate) async fn free_of(
    db: &impl sea_orm::ConnectionTrait,
    payment: &payments::Model,
) -> WardResult<i64> {
    let refunded = refunded_of(db, payment.id).await?;
    let allocated: i64 = allocations_of_unsorted(db, payment.id)
        .await?
        .iter()
        .map(|row| row.amount)
        .sum();
    Ok(payment.amount - refunded - allocated)
}

async fn allocations_of_unsorted(
    db: &impl sea_orm::ConnectionTrait,
    payment_id: Uuid,
) -> WardResult<Vec<payment_allocations::Model>> {
    payment_allocations::Entity::find()
        .filter(payment_allocations::Column::PaymentId.eq(payment_id))
        .all(db)
        .await
        .map_err(|error| db_error("reading a payment's allocations", error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_invoice_is_paid_once_nothing_is_outstanding() {
        assert_eq!(settled_status(500, 0), InvoiceStatus::Issued);
        assert_eq!(settled_status(500, 1), InvoiceStatus::PartiallyPaid);
        assert_eq!(settled_status(500, 499), InvoiceStatus::PartiallyPaid);
        assert_eq!(settled_status(500, 500), InvoiceStatus::Paid);
        // A zero total owes nothing from the moment it is issued.
        assert_eq!(settled_status(0, 0), InvoiceStatus::Paid);
    }
}
