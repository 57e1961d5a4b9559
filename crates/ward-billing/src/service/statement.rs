//! Manual ledger entries (adjustments and write-offs) and statements.

use chrono::{Days, NaiveDate, NaiveTime};
use uuid::Uuid;
use ward_bus::billing::{InvoiceStatus, LedgerEntry, LedgerKind, NewAdjustment, Statement};
use ward_bus::events::{BILLING_TOPIC, LedgerAdjusted, envelope};
use ward_bus::outbox::enqueue;
use ward_core::{CallerContext, Right, WardError, WardResult};

use super::invoices::{add_write_off, find_named_invoice, parse_status};
use super::ledger::{
    ACCOUNT_NOT_FOUND, Posting, balance_of, entries_between, lock_account, now, post,
    require_billable, settle_currency, stored_currency,
};
use super::settlement::{allocated_to_invoice, outstanding_of, refresh_invoice};
use super::{BillingService, PRODUCER, find_account_in, rfc3339};

/// Posts an adjustment (either sign) or a write-off (negative). A write-off naming an issued
/// invoice settles up to that invoice's outstanding amount; the rest, like any adjustment,
/// only moves the balance.
pub(super) async fn post_adjustment(
    service: &BillingService,
    ctx: &CallerContext,
    adjustment: NewAdjustment,
) -> WardResult<LedgerEntry> {
    let patient_id = adjustment.patient_id;
    ctx.require_for(Right::BillingWrite, &[patient_id])?;
    let txn = service.begin_write().await?;
    let account = lock_account(&txn, patient_id).await?;
    require_billable(&account)?;
    settle_currency(&txn, &account, &adjustment.currency).await?;
    let mut balances = Vec::new();
    if let Some(invoice_id) = adjustment.invoice_id_opt {
        let invoice = find_named_invoice(&txn, invoice_id, patient_id).await?;
        let status = parse_status(&invoice)?;
        if !matches!(status, InvoiceStatus::Issued | InvoiceStatus::PartiallyPaid) {
            return Err(WardError::AlreadyExists(format!(
                "the invoice is {}; only an issued invoice can be written off",
                status.as_str()
            )));
        }
        let allocated = allocated_to_invoice(&txn, invoice_id).await?;
        let settled = adjustment
            .amount
            .abs()
            .min(outstanding_of(&invoice, allocated));
        add_write_off(&txn, &invoice, settled).await?;
        balances.push(refresh_invoice(&txn, invoice_id).await?);
    }
    let posted_at = now();
    let entry = post(
        &txn,
        Posting {
            patient_id,
            at: posted_at,
            kind: adjustment.kind,
            amount: adjustment.amount,
            currency: &adjustment.currency,
            reference: adjustment.reason.clone(),
            invoice_id_opt: adjustment.invoice_id_opt,
            payment_id_opt: None,
        },
    )
    .await?;
    debug_assert!(matches!(
        entry.kind,
        LedgerKind::Adjustment | LedgerKind::WriteOff
    ));
    let payload = LedgerAdjusted {
        entry_id: entry.id.to_string(),
        patient_id: patient_id.to_string(),
        currency: adjustment.currency.as_str().to_string(),
        amount: adjustment.amount,
        kind: adjustment.kind.as_str().to_string(),
        reason: adjustment.reason,
        posted_at: rfc3339(posted_at),
        invoices: balances,
    };
    let event = envelope(PRODUCER, patient_id, ctx.request_id(), posted_at, &payload);
    enqueue(&txn, BILLING_TOPIC, &event).await?;
    service.commit_and_wake(txn).await?;
    tracing::info!(entry_id = %entry.id, "posted a manual ledger entry");
    Ok(entry)
}

/// The ledger over the UTC days `from..=to`: entries with `from 00:00 <= at < (to + 1) 00:00`.
pub(super) async fn statement(
    service: &BillingService,
    ctx: &CallerContext,
    patient_id: Uuid,
    from_opt: Option<NaiveDate>,
    to_opt: Option<NaiveDate>,
) -> WardResult<Statement> {
    ctx.require_for(Right::BillingRead, &[patient_id])?;
    if let (Some(from), Some(to)) = (from_opt, to_opt)
        && from > to
    {
        return Err(WardError::invalid_field(
            "from",
            "from must not be after to",
        ));
    }
    let db = service.db();
    let Some(account) = find_account_in(db, patient_id).await? else {
        return Err(WardError::NotFound(ACCOUNT_NOT_FOUND.into()));
    };
    let start_opt = from_opt.map(|from| from.and_time(NaiveTime::MIN).and_utc());
    // The day after `to`, so `to` itself is in; the last representable day has no day after,
    // and then nothing is cut off.
    let end_opt = to_opt
        .and_then(|to| to.checked_add_days(Days::new(1)))
        .map(|day_after| day_after.and_time(NaiveTime::MIN).and_utc());
    let opening_balance = match start_opt {
        Some(start) => balance_of(db, patient_id, Some(start)).await?,
        None => 0,
    };
    let entries = entries_between(db, patient_id, start_opt, end_opt).await?;
    let mut closing_balance = opening_balance;
    for entry in &entries {
        closing_balance += entry.amount;
    }
    let currency_opt = match &account.currency_opt {
        Some(currency) => Some(stored_currency(currency.as_str())?),
        None => None,
    };
    Ok(Statement {
        patient_id,
        currency_opt,
        from_opt,
        to_opt,
        opening_balance,
        entries,
        closing_balance,
    })
}
