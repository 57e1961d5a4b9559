//! Drafts, issuing, voiding, the account's currency and who may bill.

use ward_bus::BillingApi;
use ward_bus::billing::{InvoiceQuery, InvoiceStatus, LedgerKind};
use ward_bus::events::{InvoiceIssued, InvoiceVoided};
use ward_bus::patients::PageRequest;
use ward_core::{UserRole, WardError};

use crate::helpers::{Backend, Harness, caller, invoice, payment, payment_in};

async fn lifecycle(backend: Backend) {
    // Arrange
    let app = Harness::start(backend).await;
    let patient_id = app.open_account().await;
    let fresh = app
        .service
        .get_account_by_patient(&app.ctx, patient_id)
        .await
        .unwrap();
    assert_eq!((fresh.currency_opt, fresh.balance), (None, 0));

    // Act: a draft of 2 x 1500 + 1 x -500, issued, then paid in two parts with change.
    let draft = app
        .service
        .create_invoice(
            &app.ctx,
            invoice(patient_id, "eur", &[(2, 1500), (1, -500)]),
        )
        .await
        .unwrap();
    let after_draft = app
        .service
        .get_account_by_patient(&app.ctx, patient_id)
        .await
        .unwrap();
    let issued = app.service.issue_invoice(&app.ctx, draft.id).await.unwrap();
    let balance_issued = app.balance(patient_id).await;
    app.pay(patient_id, 1000, None).await;
    let partly = app.service.get_invoice(&app.ctx, draft.id).await.unwrap();
    app.pay(patient_id, 2000, Some(draft.id)).await;
    let paid = app.service.get_invoice(&app.ctx, draft.id).await.unwrap();

    // Assert
    assert_eq!(draft.status, InvoiceStatus::Draft);
    assert_eq!((draft.total, draft.outstanding()), (2500, 0));
    assert_eq!(draft.lines[0].amount, 3000);
    assert_eq!(after_draft.currency_opt.unwrap().as_str(), "EUR");
    assert_eq!(after_draft.balance, 0, "a draft charges nothing");
    assert_eq!(issued.status, InvoiceStatus::Issued);
    assert_eq!(issued.outstanding(), 2500);
    assert_eq!(balance_issued, 2500);
    assert_eq!(partly.status, InvoiceStatus::PartiallyPaid);
    assert_eq!((partly.paid, partly.outstanding()), (1000, 1500));
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert_eq!(paid.outstanding(), 0);
    assert_eq!(
        app.balance(patient_id).await,
        -500,
        "the overpayment is a credit"
    );
    assert_eq!(app.ledger_sum(patient_id).await, -500);
    let issued_events = app.events_of::<InvoiceIssued>().await;
    assert_eq!(issued_events.len(), 1);
    let balance = issued_events[0].balance.clone().unwrap();
    assert_eq!(balance.outstanding, 2500);
    assert_eq!(balance.invoice_id, draft.id.to_string());
    let issued_on = issued.issued_at_opt.unwrap().date_naive();
    assert_eq!(
        balance.issued_on,
        ward_bus::patients::format_date(issued_on)
    );
    assert_eq!(
        balance.due_date,
        ward_bus::patients::format_date(draft.due_date)
    );
    app.finish().await;
}

#[tokio::test]
async fn an_invoice_is_drafted_issued_and_paid_on_sqlite() {
    lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_invoice_is_drafted_issued_and_paid_on_postgres() {
    lifecycle(Backend::Postgres).await;
}

#[tokio::test]
async fn the_first_money_movement_fixes_the_currency() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    app.service
        .create_invoice(&app.ctx, invoice(patient_id, "USD", &[(1, 100)]))
        .await
        .unwrap();

    // Act
    let invoice_error = app
        .service
        .create_invoice(&app.ctx, invoice(patient_id, "EUR", &[(1, 100)]))
        .await
        .unwrap_err();
    let payment_error = app
        .service
        .record_payment(
            &app.ctx,
            payment_in(patient_id, 100, "GBP", None),
            crate::helpers::fresh_key(),
        )
        .await
        .unwrap_err();

    // Assert
    for error in [invoice_error, payment_error] {
        assert!(
            matches!(error, WardError::InvalidArgument { .. }),
            "{error:?}"
        );
        assert_eq!(error.field_errors()[0].field, "currency");
    }
    assert_eq!(app.num_rows("payments").await, 0);
    assert_eq!(app.ledger_sum(patient_id).await, 0);
    app.finish().await;
}

#[tokio::test]
async fn without_an_open_account_or_on_a_merged_one_nothing_is_billed() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let stranger = uuid::Uuid::now_v7();
    let merged = app.open_account().await;
    let target = app.open_account().await;
    let merge = ward_bus::events::PatientMerged {
        source_patient_id: merged.to_string(),
        target_patient_id: target.to_string(),
    };
    let event =
        ward_bus::events::envelope("patients", merged, "req-merge", chrono::Utc::now(), &merge);
    let handler = ward_billing::PatientEventsHandler::new(app.waker());
    let txn = sea_orm::TransactionTrait::begin(&app.db).await.unwrap();
    ward_bus::consumer::EventHandler::handle(&handler, &txn, &event)
        .await
        .unwrap();
    txn.commit().await.unwrap();

    // Act
    let missing = app
        .service
        .create_invoice(&app.ctx, invoice(stranger, "EUR", &[(1, 100)]))
        .await
        .unwrap_err();
    let merged_invoice = app
        .service
        .create_invoice(&app.ctx, invoice(merged, "EUR", &[(1, 100)]))
        .await
        .unwrap_err();
    let merged_payment = app
        .service
        .record_payment(
            &app.ctx,
            payment(merged, 100, None),
            crate::helpers::fresh_key(),
        )
        .await
        .unwrap_err();
    let clinician = app
        .service
        .create_invoice(
            &caller(UserRole::Clinician),
            invoice(merged, "EUR", &[(1, 100)]),
        )
        .await
        .unwrap_err();

    // Assert
    assert_eq!(
        missing,
        WardError::NotFound("Billing account not found".into())
    );
    assert!(
        matches!(merged_invoice, WardError::AlreadyExists(ref message) if message.contains("merged"))
    );
    assert!(matches!(merged_payment, WardError::AlreadyExists(_)));
    assert!(
        matches!(clinician, WardError::Forbidden(_)),
        "{clinician:?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn only_a_draft_is_issued_and_a_paid_invoice_is_not_voided() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    let invoice_id = app.issued_invoice(patient_id, 700).await;

    // Act
    let issued_again = app
        .service
        .issue_invoice(&app.ctx, invoice_id)
        .await
        .unwrap_err();
    app.pay(patient_id, 700, None).await;
    let void_paid = app
        .service
        .void_invoice(&app.ctx, invoice_id, "mistake".into())
        .await
        .unwrap_err();
    let unknown = app
        .service
        .issue_invoice(&app.ctx, uuid::Uuid::now_v7())
        .await
        .unwrap_err();

    // Assert
    assert!(
        matches!(issued_again, WardError::AlreadyExists(ref message) if message.contains("issued"))
    );
    assert!(
        matches!(void_paid, WardError::AlreadyExists(ref message) if message.contains("refund the payments first"))
    );
    assert_eq!(unknown, WardError::NotFound("Invoice not found".into()));
    app.finish().await;
}

#[tokio::test]
async fn voiding_reverses_the_charge_and_frees_payments_as_credit() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    let invoice_id = app.issued_invoice(patient_id, 1000).await;
    let payment_id = app.pay(patient_id, 400, None).await;
    let draft = app
        .service
        .create_invoice(&app.ctx, invoice(patient_id, "EUR", &[(1, 50)]))
        .await
        .unwrap();

    // Act
    let voided = app
        .service
        .void_invoice(&app.ctx, invoice_id, "wrong patient".into())
        .await
        .unwrap();
    let voided_draft = app
        .service
        .void_invoice(&app.ctx, draft.id, String::new())
        .await
        .unwrap();
    let void_again = app
        .service
        .void_invoice(&app.ctx, invoice_id, String::new())
        .await
        .unwrap_err();

    // Assert
    assert_eq!(voided.status, InvoiceStatus::Void);
    assert_eq!(voided.outstanding(), 0);
    assert_eq!(voided_draft.status, InvoiceStatus::Void);
    assert!(matches!(void_again, WardError::AlreadyExists(_)));
    assert_eq!(
        app.balance(patient_id).await,
        -400,
        "the payment is credit again"
    );
    let payment = app.service.get_payment(&app.ctx, payment_id).await.unwrap();
    assert!(payment.allocations.is_empty());
    let statement = app
        .service
        .statement(&app.ctx, patient_id, None, None)
        .await
        .unwrap();
    let kinds: Vec<_> = statement.entries.iter().map(|entry| entry.kind).collect();
    assert_eq!(
        kinds,
        [
            LedgerKind::Charge,
            LedgerKind::Payment,
            LedgerKind::ChargeReversal
        ],
        "a draft's void posts nothing"
    );
    assert_eq!(statement.entries[2].amount, -1000);
    let voided_events = app.events_of::<InvoiceVoided>().await;
    assert_eq!(voided_events.len(), 1);
    assert_eq!(
        (voided_events[0].total, voided_events[0].reason.as_str()),
        (1000, "wrong patient")
    );
    app.finish().await;
}

#[tokio::test]
async fn issuing_applies_the_accounts_credit() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    app.pay(patient_id, 300, None).await;
    app.pay(patient_id, 500, None).await;

    // Act
    let invoice_id = app.issued_invoice(patient_id, 600).await;

    // Assert
    let issued = app.service.get_invoice(&app.ctx, invoice_id).await.unwrap();
    assert_eq!((issued.status, issued.paid), (InvoiceStatus::Paid, 600));
    assert_eq!(app.balance(patient_id).await, -200);
    let event = app.events_of::<InvoiceIssued>().await.remove(0);
    assert_eq!(event.balance.unwrap().outstanding, 0);
    app.finish().await;
}

#[tokio::test]
async fn invoices_are_listed_newest_first_by_patient_and_status() {
    // Arrange
    let app = Harness::start(Backend::Sqlite).await;
    let patient_id = app.open_account().await;
    let other = app.open_account().await;
    let first = app.issued_invoice(patient_id, 100).await;
    let second = app.issued_invoice(patient_id, 200).await;
    let third = app.issued_invoice(patient_id, 300).await;
    app.issued_invoice(other, 400).await;
    app.pay(patient_id, 100, Some(first)).await;

    // Act
    let page_one = app
        .service
        .list_invoices(
            &app.ctx,
            InvoiceQuery {
                patient_id_opt: Some(patient_id),
                status_opt: None,
                page: PageRequest::parse(Some(2), None).unwrap(),
            },
        )
        .await
        .unwrap();
    let cursor = page_one.next_cursor_opt.clone().unwrap();
    let page_two = app
        .service
        .list_invoices(
            &app.ctx,
            InvoiceQuery {
                patient_id_opt: Some(patient_id),
                status_opt: None,
                page: PageRequest::parse(Some(2), Some(&cursor)).unwrap(),
            },
        )
        .await
        .unwrap();
    let paid = app
        .service
        .list_invoices(
            &app.ctx,
            InvoiceQuery {
                patient_id_opt: None,
                status_opt: Some(InvoiceStatus::Paid),
                page: PageRequest::parse(None, None).unwrap(),
            },
        )
        .await
        .unwrap();

    // Assert
    let ids: Vec<_> = page_one
        .items
        .iter()
        .chain(&page_two.items)
        .map(|item| item.id)
        .collect();
    assert_eq!(ids, [third, second, first]);
    assert_eq!(page_two.next_cursor_opt, None);
    assert_eq!(paid.items.len(), 1);
    assert_eq!(paid.items[0].id, first);
    app.finish().await;
}
