//! Payments, their allocation, idempotent retries, refunds and write-offs.

use ward_bus::BillingApi;
use ward_bus::billing::{AdjustmentInput, InvoiceStatus, LedgerKind, NewAdjustment};
use ward_bus::events::{LedgerAdjusted, PaymentRecorded, PaymentRefunded};
use ward_bus::patients::{IDEMPOTENCY_KEY_REUSED_MESSAGE, IdempotencyKey};
use ward_core::{UserRole, WardError};

use crate::helpers::{Backend, Harness, caller, fresh_key, payment};

#[tokio::test]
async fn a_payment_goes_to_the_named_invoice_then_the_oldest_and_the_rest_is_credit() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    let oldest = app.issued_invoice(patient_id, 300).await;
    let middle = app.issued_invoice(patient_id, 300).await;
    let named = app.issued_invoice(patient_id, 300).await;

    // Act: 300 to the named one, 300 to the oldest, 100 to the middle one, 0 left.
    let payment_id = app.pay(patient_id, 700, Some(named)).await;
    let credit_payment = app.pay(patient_id, 500, None).await;

    // Assert
    let payment = app.service.get_payment(&app.ctx, payment_id).await.unwrap();
    let mut allocations: Vec<_> = payment
        .allocations
        .iter()
        .map(|allocation| (allocation.invoice_id, allocation.amount))
        .collect();
    allocations.sort();
    let mut expected = vec![(named, 300), (oldest, 300), (middle, 100)];
    expected.sort();
    assert_eq!(allocations, expected);
    let with_credit = app
        .service
        .get_payment(&app.ctx, credit_payment)
        .await
        .unwrap();
    assert_eq!(
        with_credit.allocations.len(),
        1,
        "200 to the middle one, 300 credit"
    );
    assert_eq!(with_credit.allocations[0].amount, 200);
    assert_eq!(app.balance(patient_id).await, 900 - 1200);
    let recorded = app.events_of::<PaymentRecorded>().await;
    let first_outstanding: Vec<_> = recorded[0]
        .invoices
        .iter()
        .map(|balance| (balance.invoice_id.clone(), balance.outstanding))
        .collect();
    assert_eq!(
        first_outstanding,
        [
            (named.to_string(), 0),
            (oldest.to_string(), 0),
            (middle.to_string(), 200)
        ]
    );
    assert_eq!(recorded[1].invoices.len(), 1);
    assert_eq!(recorded[1].invoices[0].outstanding, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_payment_naming_another_patients_invoice_changes_nothing() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    let other = app.open_account().await;
    let others_invoice = app.issued_invoice(other, 300).await;

    // Act
    let error = app
        .service
        .record_payment(
            &app.ctx,
            payment(patient_id, 100, Some(others_invoice)),
            fresh_key(),
        )
        .await
        .unwrap_err();

    // Assert
    assert_eq!(error.field_errors()[0].field, "invoiceId");
    assert_eq!(app.num_rows("payments").await, 0);
    assert_eq!(app.ledger_sum(patient_id).await, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_retried_payment_is_recorded_once_and_a_reused_key_is_refused() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    let key = IdempotencyKey::parse("pay-1").unwrap();

    // Act
    let first = app
        .service
        .record_payment(&app.ctx, payment(patient_id, 250, None), key.clone())
        .await
        .unwrap();
    let retry = app
        .service
        .record_payment(&app.ctx, payment(patient_id, 250, None), key.clone())
        .await
        .unwrap();
    let other_body = app
        .service
        .record_payment(&app.ctx, payment(patient_id, 251, None), key.clone())
        .await
        .unwrap_err();
    let other_user = app
        .service
        .record_payment(
            &caller(UserRole::Billing),
            payment(patient_id, 250, None),
            key,
        )
        .await
        .unwrap();

    // Assert
    assert!(first.newly_recorded);
    assert!(!retry.newly_recorded);
    assert_eq!(retry.payment, first.payment);
    assert_eq!(
        other_body,
        WardError::Unprocessable(IDEMPOTENCY_KEY_REUSED_MESSAGE.into())
    );
    assert!(other_user.newly_recorded, "keys are scoped to their caller");
    assert_eq!(app.balance(patient_id).await, -500);
    assert_eq!(app.events_of::<PaymentRecorded>().await.len(), 2);
    app.finish().await;
}

#[tokio::test]
async fn a_refund_takes_credit_first_then_reopens_the_newest_invoice() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    let older = app.issued_invoice(patient_id, 400).await;
    let newer = app.issued_invoice(patient_id, 400).await;
    let payment_id = app.pay(patient_id, 1000, None).await;

    // Act: 200 of credit, then 100 back from the newer invoice; then too much.
    let refund = app
        .service
        .refund_payment(&app.ctx, payment_id, 300, None)
        .await
        .unwrap();
    let too_much = app
        .service
        .refund_payment(&app.ctx, payment_id, 701, None)
        .await
        .unwrap_err();
    let zero = app
        .service
        .refund_payment(&app.ctx, payment_id, 0, None)
        .await
        .unwrap_err();

    // Assert
    assert_eq!((refund.amount, refund.currency.as_str()), (300, "EUR"));
    for error in [too_much, zero] {
        assert_eq!(error.field_errors()[0].field, "amount", "{error:?}");
    }
    let older_now = app.service.get_invoice(&app.ctx, older).await.unwrap();
    let newer_now = app.service.get_invoice(&app.ctx, newer).await.unwrap();
    assert_eq!(older_now.status, InvoiceStatus::Paid);
    assert_eq!(
        (newer_now.status, newer_now.outstanding()),
        (InvoiceStatus::PartiallyPaid, 100)
    );
    let payment = app.service.get_payment(&app.ctx, payment_id).await.unwrap();
    assert_eq!(payment.refunded, 300);
    assert_eq!(app.balance(patient_id).await, 100);
    let refunded = app.events_of::<PaymentRefunded>().await;
    assert_eq!(refunded.len(), 1);
    assert_eq!(refunded[0].method, "card");
    assert_eq!(refunded[0].invoices.len(), 1);
    assert_eq!(
        (
            refunded[0].invoices[0].invoice_id.clone(),
            refunded[0].invoices[0].outstanding
        ),
        (newer.to_string(), 100)
    );
    app.finish().await;
}

#[tokio::test]
async fn a_refund_with_a_key_is_made_once_and_never_exceeds_the_payment() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    let payment_id = app.pay(patient_id, 500, None).await;
    let key = IdempotencyKey::parse("refund-1").unwrap();

    // Act
    let first = app
        .service
        .refund_payment(&app.ctx, payment_id, 400, Some(key.clone()))
        .await
        .unwrap();
    let retry = app
        .service
        .refund_payment(&app.ctx, payment_id, 400, Some(key.clone()))
        .await
        .unwrap();
    let reused = app
        .service
        .refund_payment(&app.ctx, payment_id, 100, Some(key))
        .await
        .unwrap_err();
    let over = app
        .service
        .refund_payment(&app.ctx, payment_id, 101, None)
        .await
        .unwrap_err();
    let unknown = app
        .service
        .refund_payment(&app.ctx, uuid::Uuid::now_v7(), 1, None)
        .await
        .unwrap_err();

    // Assert
    assert_eq!(retry, first);
    assert!(matches!(reused, WardError::Unprocessable(_)));
    assert_eq!(over.field_errors()[0].field, "amount");
    assert_eq!(unknown, WardError::NotFound("Payment not found".into()));
    assert_eq!(app.num_rows("refunds").await, 1);
    assert_eq!(app.balance(patient_id).await, -100);
    app.finish().await;
}

#[tokio::test]
async fn a_write_off_settles_its_invoice_and_an_adjustment_moves_the_balance() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    let invoice_id = app.issued_invoice(patient_id, 1000).await;
    app.pay(patient_id, 600, None).await;
    let write_off = NewAdjustment::parse(
        patient_id,
        AdjustmentInput {
            amount: Some(500),
            currency: Some("EUR".into()),
            kind: Some("write_off".into()),
            reason: Some("hardship".into()),
            invoice_id: Some(invoice_id.to_string()),
        },
    )
    .unwrap();
    let fee = NewAdjustment::parse(
        patient_id,
        AdjustmentInput {
            amount: Some(25),
            currency: Some("EUR".into()),
            kind: None,
            reason: Some("late fee".into()),
            invoice_id: None,
        },
    )
    .unwrap();

    // Act
    let written_off = app
        .service
        .post_adjustment(&app.ctx, write_off)
        .await
        .unwrap();
    let adjusted = app.service.post_adjustment(&app.ctx, fee).await.unwrap();
    let void_error = app
        .service
        .void_invoice(&app.ctx, invoice_id, String::new())
        .await
        .unwrap_err();

    // Assert
    assert_eq!(
        (written_off.kind, written_off.amount),
        (LedgerKind::WriteOff, -500)
    );
    assert_eq!(
        (adjusted.kind, adjusted.amount),
        (LedgerKind::Adjustment, 25)
    );
    let invoice = app.service.get_invoice(&app.ctx, invoice_id).await.unwrap();
    assert_eq!((invoice.status, invoice.paid), (InvoiceStatus::Paid, 1000));
    // 1000 - 600 - 500 + 25: the write-off's 100 beyond the invoice lowers the balance too.
    assert_eq!(app.balance(patient_id).await, -75);
    assert!(matches!(void_error, WardError::AlreadyExists(_)));
    let events = app.events_of::<LedgerAdjusted>().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].invoices[0].outstanding, 0);
    assert!(events[1].invoices.is_empty());
    app.finish().await;
}
