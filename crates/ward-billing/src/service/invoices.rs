//! Invoices: drafts, issuing (a charge, then the account's credit applied) and voiding (a charge
//! reversal, and what was applied becomes credit again).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use ward_bus::billing::{
    Invoice, InvoiceLine, InvoicePage, InvoiceQuery, InvoiceStatus, LedgerKind, NewInvoice,
    REASON_MAX_CHARS,
};
use ward_bus::db::db_error;
use ward_bus::events::{BILLING_TOPIC, InvoiceIssued, InvoiceVoided, envelope};
use ward_bus::outbox::enqueue;
use ward_bus::patients::cursor_after;
use ward_core::{CallerContext, Right, WardError, WardResult};

use super::ledger::{
    Posting, lock_account, now, post, require_billable, settle_currency, stored_currency,
};
use super::settlement::{
    allocate, allocated_to_invoice, allocated_to_invoices, credit_by_payment, free_invoice,
    outstanding_of, refresh_invoice,
};
use super::{BillingService, PRODUCER, rfc3339};
use crate::entity::invoices;

pub(crate) const INVOICE_NOT_FOUND: &str = "Invoice not found";

/// An invoice line as stored in the `lines` JSON column.
#[derive(Serialize, Deserialize)]
struct StoredLine {
    code: String,
    description: String,
    quantity: u32,
    unit_price: i64,
    amount: i64,
}

pub(super) async fn create_invoice(
    service: &BillingService,
    ctx: &CallerContext,
    invoice: NewInvoice,
) -> WardResult<Invoice> {
    ctx.require_for(Right::BillingWrite, &[invoice.patient_id])?;
    let txn = service.begin_write().await?;
    let account = lock_account(&txn, invoice.patient_id).await?;
    require_billable(&account)?;
    settle_currency(&txn, &account, &invoice.currency).await?;
    let stored_lines: Vec<StoredLine> = invoice
        .lines
        .iter()
        .map(|line| StoredLine {
            code: line.code.clone(),
            description: line.description.clone(),
            quantity: line.quantity,
            unit_price: line.unit_price,
            amount: line.amount,
        })
        .collect();
    let lines_json = serde_json::to_string(&stored_lines)
        .map_err(|error| WardError::internal("encoding invoice lines", error))?;
    let row = invoices::Model {
        id: ward_core::id::new_id(),
        patient_id: invoice.patient_id,
        status: InvoiceStatus::Draft.as_str().to_string(),
        currency: invoice.currency.as_str().to_string(),
        lines: lines_json,
        total: invoice.total(),
        written_off: 0,
        due_date: invoice.due_date,
        created_at: now(),
        issued_at: None,
        voided_at: None,
        void_reason: None,
    };
    invoices::Entity::insert(invoices::ActiveModel::from(row.clone()))
        .exec_without_returning(&txn)
        .await
        .map_err(|error| db_error("creating an invoice", error))?;
    service.commit(txn).await?;
    tracing::info!(invoice_id = %row.id, "created a draft invoice");
    invoice_from_row(row, 0)
}

pub(super) async fn get_invoice(
    service: &BillingService,
    ctx: &CallerContext,
    invoice_id: Uuid,
) -> WardResult<Invoice> {
    ctx.require(Right::BillingRead)?;
    let row = find_invoice(service.db(), invoice_id).await?;
    ctx.require_for(Right::BillingRead, &[row.patient_id])?;
    let allocated = allocated_to_invoice(service.db(), invoice_id).await?;
    invoice_from_row(row, allocated)
}

pub(super) async fn list_invoices(
    service: &BillingService,
    ctx: &CallerContext,
    query: InvoiceQuery,
) -> WardResult<InvoicePage> {
    match query.patient_id_opt {
        Some(patient_id) => ctx.require_for(Right::BillingRead, &[patient_id])?,
        None => ctx.require(Right::BillingRead)?,
    }
    let mut select = invoices::Entity::find();
    if let Some(patient_id) = query.patient_id_opt {
        select = select.filter(invoices::Column::PatientId.eq(patient_id));
    }
    if let Some(status) = query.status_opt {
        select = select.filter(invoices::Column::Status.eq(status.as_str()));
    }
    if let Some(after) = query.page.after_opt {
        select = select.filter(invoices::Column::Id.lt(after));
    }
    // UUID v7 ids sort by creation: newest first is id descending. One more row than the page
    // tells whether another page follows.
    let mut rows = select
        .order_by_desc(invoices::Column::Id)
        .limit(u64::from(query.page.limit) + 1)
        .all(service.db())
        .await
        .map_err(|error| db_error("listing invoices", error))?;
    let has_more = rows.len() > query.page.limit as usize;
    rows.truncate(query.page.limit as usize);
    let next_cursor_opt = match rows.last() {
        Some(last) if has_more => Some(cursor_after(last.id)),
        _ => None,
    };
    // A token narrowed to some patients may list without a filter, but sees nothing of others.
    let mut patient_ids: Vec<Uuid> = rows.iter().map(|row| row.patient_id).collect();
    patient_ids.sort();
    patient_ids.dedup();
    ctx.require_for(Right::BillingRead, &patient_ids)?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let allocated_by_id = allocated_to_invoices(service.db(), &ids).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let allocated = allocated_by_id.get(&row.id).copied().unwrap_or(0);
        items.push(invoice_from_row(row, allocated)?);
    }
    Ok(InvoicePage {
        items,
        next_cursor_opt,
    })
}

pub(super) async fn issue_invoice(
    service: &BillingService,
    ctx: &CallerContext,
    invoice_id: Uuid,
) -> WardResult<Invoice> {
    ctx.require(Right::BillingWrite)?;
    let txn = service.begin_write().await?;
    let patient_id = find_invoice(&txn, invoice_id).await?.patient_id;
    ctx.require_for(Right::BillingWrite, &[patient_id])?;
    let account = lock_account(&txn, patient_id).await?;
    require_billable(&account)?;
    // Read again under the lock: a concurrent issue or void may have committed meanwhile.
    let draft = find_invoice(&txn, invoice_id).await?;
    let status = parse_status(&draft)?;
    if status != InvoiceStatus::Draft {
        return Err(WardError::AlreadyExists(format!(
            "the invoice is {}; only a draft can be issued",
            status.as_str()
        )));
    }
    let currency = stored_currency(&draft.currency)?;
    let issued_at = now();
    invoices::Entity::update_many()
        .col_expr(
            invoices::Column::Status,
            Expr::value(InvoiceStatus::Issued.as_str()),
        )
        .col_expr(invoices::Column::IssuedAt, Expr::value(issued_at))
        .filter(invoices::Column::Id.eq(invoice_id))
        .exec(&txn)
        .await
        .map_err(|error| db_error("issuing an invoice", error))?;
    post(
        &txn,
        Posting {
            patient_id,
            at: issued_at,
            kind: LedgerKind::Charge,
            amount: draft.total,
            currency: &currency,
            reference: format!("invoice {invoice_id}"),
            invoice_id_opt: Some(invoice_id),
            payment_id_opt: None,
        },
    )
    .await?;
    // The account's credit (oldest payments first) goes to the new charge at once.
    let mut outstanding = outstanding_of(&draft, 0);
    for (payment_id, free) in credit_by_payment(&txn, patient_id).await? {
        if outstanding == 0 {
            break;
        }
        let applied = free.min(outstanding);
        allocate(&txn, payment_id, invoice_id, applied).await?;
        outstanding -= applied;
    }
    let balance = refresh_invoice(&txn, invoice_id).await?;
    let payload = InvoiceIssued {
        invoice_id: invoice_id.to_string(),
        patient_id: patient_id.to_string(),
        currency: currency.as_str().to_string(),
        total: draft.total,
        issued_at: rfc3339(issued_at),
        balance: Some(balance),
    };
    let event = envelope(PRODUCER, patient_id, ctx.request_id(), issued_at, &payload);
    enqueue(&txn, BILLING_TOPIC, &event).await?;
    let issued = find_invoice(&txn, invoice_id).await?;
    let allocated = allocated_to_invoice(&txn, invoice_id).await?;
    service.commit_and_wake(txn).await?;
    tracing::info!(%invoice_id, "issued an invoice");
    invoice_from_row(issued, allocated)
}

/// A draft becomes void with no ledger entry. An issued or partly paid invoice posts a charge
/// reversal of its total and frees its allocations as credit. Refused (`Conflict`): a paid
/// invoice ("refund the payments first": voiding it would hand its payments back as credit
/// without anyone deciding so), a void one, and one with a write-off (reversing the whole
/// charge would turn the write-off into credit; post an adjustment instead).
pub(super) async fn void_invoice(
    service: &BillingService,
    ctx: &CallerContext,
    invoice_id: Uuid,
    reason: String,
) -> WardResult<Invoice> {
    ctx.require(Right::BillingWrite)?;
    let reason = reason.trim().to_string();
    if reason.chars().count() > REASON_MAX_CHARS || reason.chars().any(char::is_control) {
        return Err(WardError::invalid_field(
            "reason",
            format!(
                "reason must be at most {REASON_MAX_CHARS} characters, without control characters"
            ),
        ));
    }
    let txn = service.begin_write().await?;
    let patient_id = find_invoice(&txn, invoice_id).await?.patient_id;
    ctx.require_for(Right::BillingWrite, &[patient_id])?;
    lock_account(&txn, patient_id).await?;
    let invoice = find_invoice(&txn, invoice_id).await?;
    let status = parse_status(&invoice)?;
    match status {
        InvoiceStatus::Draft | InvoiceStatus::Issued | InvoiceStatus::PartiallyPaid => {}
        InvoiceStatus::Paid => {
            return Err(WardError::AlreadyExists(
                "the invoice is paid; refund the payments first".into(),
            ));
        }
        InvoiceStatus::Void => {
            return Err(WardError::AlreadyExists(
                "the invoice is already void".into(),
            ));
        }
    }
    if invoice.written_off > 0 {
        return Err(WardError::AlreadyExists(
            "the invoice has a write-off; post an adjustment instead of voiding it".into(),
        ));
    }
    let voided_at = now();
    invoices::Entity::update_many()
        .col_expr(
            invoices::Column::Status,
            Expr::value(InvoiceStatus::Void.as_str()),
        )
        .col_expr(invoices::Column::VoidedAt, Expr::value(voided_at))
        .col_expr(invoices::Column::VoidReason, Expr::value(reason.clone()))
        .filter(invoices::Column::Id.eq(invoice_id))
        .exec(&txn)
        .await
        .map_err(|error| db_error("voiding an invoice", error))?;
    let was_issued = status != InvoiceStatus::Draft;
    if was_issued {
        let currency = stored_currency(&invoice.currency)?;
        free_invoice(&txn, invoice_id).await?;
        let reference = if reason.is_empty() {
            format!("invoice {invoice_id} voided")
        } else {
            format!("invoice {invoice_id} voided: {reason}")
        };
        post(
            &txn,
            Posting {
                patient_id,
                at: voided_at,
                kind: LedgerKind::ChargeReversal,
                amount: -invoice.total,
                currency: &currency,
                reference,
                invoice_id_opt: Some(invoice_id),
                payment_id_opt: None,
            },
        )
        .await?;
        let payload = InvoiceVoided {
            invoice_id: invoice_id.to_string(),
            patient_id: patient_id.to_string(),
            currency: currency.as_str().to_string(),
            total: invoice.total,
            voided_at: rfc3339(voided_at),
            reason,
        };
        let event = envelope(PRODUCER, patient_id, ctx.request_id(), voided_at, &payload);
        enqueue(&txn, BILLING_TOPIC, &event).await?;
    }
    let voided = find_invoice(&txn, invoice_id).await?;
    if was_issued {
        service.commit_and_wake(txn).await?;
    } else {
        service.commit(txn).await?;
    }
    tracing::info!(%invoice_id, "voided an invoice");
    invoice_from_row(voided, 0)
}

pub(crate) async fn find_invoice(
    db: &impl ConnectionTrait,
    invoice_id: Uuid,
) -> WardResult<invoices::Model> {
    let row_opt = invoices::Entity::find_by_id(invoice_id)
        .one(db)
        .await
        .map_err(|error| db_error("reading an invoice", error))?;
    row_opt.ok_or_else(|| WardError::NotFound(INVOICE_NOT_FOUND.into()))
}

/// The invoice a payment or a write-off names: one of this patient's, else `InvalidArgument`
/// naming `invoiceId` (whether it does not exist or is another patient's is not told apart).
pub(crate) async fn find_named_invoice(
    txn: &DatabaseTransaction,
    invoice_id: Uuid,
    patient_id: Uuid,
) -> WardResult<invoices::Model> {
    let not_this_patients =
        || WardError::invalid_field("invoiceId", "invoiceId is not an invoice of this patient");
    match find_invoice(txn, invoice_id).await {
        Ok(invoice) if invoice.patient_id == patient_id => Ok(invoice),
        Ok(_) | Err(WardError::NotFound(_)) => Err(not_this_patients()),
        Err(error) => Err(error),
    }
}

pub(crate) fn parse_status(row: &invoices::Model) -> WardResult<InvoiceStatus> {
    InvoiceStatus::parse(&row.status).ok_or_else(|| {
        WardError::Internal(format!(
            "invoice {} has an unknown status {:?}",
            row.id, row.status
        ))
    })
}

/// The invoice as the contract shows it; `allocated` is what payments cover of it now.
pub(crate) fn invoice_from_row(row: invoices::Model, allocated: i64) -> WardResult<Invoice> {
    let status = parse_status(&row)?;
    let stored_lines: Vec<StoredLine> = serde_json::from_str(&row.lines).map_err(|error| {
        WardError::internal(&format!("reading the lines of invoice {}", row.id), error)
    })?;
    let lines = stored_lines
        .into_iter()
        .map(|line| InvoiceLine {
            code: line.code,
            description: line.description,
            quantity: line.quantity,
            unit_price: line.unit_price,
            amount: line.amount,
        })
        .collect();
    Ok(Invoice {
        id: row.id,
        patient_id: row.patient_id,
        status,
        currency: stored_currency(&row.currency)?,
        lines,
        total: row.total,
        paid: allocated + row.written_off,
        due_date: row.due_date,
        created_at: row.created_at,
        issued_at_opt: row.issued_at,
        voided_at_opt: row.voided_at,
    })
}

/// Used by write-offs: settles `amount` more of an invoice.
pub(crate) async fn add_write_off(
    txn: &DatabaseTransaction,
    invoice: &invoices::Model,
    amount: i64,
) -> WardResult<()> {
    invoices::Entity::update_many()
        .col_expr(
            invoices::Column::WrittenOff,
            Expr::value(invoice.written_off + amount),
        )
        .filter(invoices::Column::Id.eq(invoice.id))
        .exec(txn)
        .await
        .map_err(|error| db_error("writing off an invoice", error))?;
    Ok(())
}
