//! Payments fired at one account at once: each lands once, and the balance is exact.

use std::sync::Arc;

use ward_bus::BillingApi;
use ward_bus::billing::InvoiceStatus;
use ward_bus::patients::IdempotencyKey;

use crate::helpers::{Backend, Harness, fresh_key, payment};

const NUM_TASKS: i64 = 10;

async fn parallel_payments_all_land(backend: Backend) {
    // Arrange
    let app = Arc::new(Harness::start(backend).await);
    let patient_id = app.open_account().await;
    let invoice_id = app.issued_invoice(patient_id, 2500).await;

    // Act: ten different payments of 300 at once.
    let mut tasks = Vec::new();
    for _ in 0..NUM_TASKS {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.service
                .record_payment(&app.ctx, payment(patient_id, 300, None), fresh_key())
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().newly_recorded);
    }

    // Assert: 2500 owed, 3000 paid: the invoice is paid exactly once, 500 is credit.
    assert_eq!(app.num_rows("payments").await, NUM_TASKS);
    assert_eq!(app.balance(patient_id).await, 2500 - 300 * NUM_TASKS);
    assert_eq!(app.ledger_sum(patient_id).await, 2500 - 300 * NUM_TASKS);
    let invoice = app.service.get_invoice(&app.ctx, invoice_id).await.unwrap();
    assert_eq!((invoice.status, invoice.paid), (InvoiceStatus::Paid, 2500));
    Arc::into_inner(app).unwrap().finish().await;
}

async fn parallel_retries_with_one_key_record_one_payment(backend: Backend) {
    // Arrange
    let app = Arc::new(Harness::start(backend).await);
    let patient_id = app.open_account().await;
    let key = IdempotencyKey::parse("racing-key").unwrap();

    // Act
    let mut tasks = Vec::new();
    for _ in 0..NUM_TASKS {
        let app = app.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            app.service
                .record_payment(&app.ctx, payment(patient_id, 400, None), key)
                .await
                .unwrap()
        }));
    }
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.push(task.await.unwrap());
    }

    // Assert
    let num_new = receipts
        .iter()
        .filter(|receipt| receipt.newly_recorded)
        .count();
    assert_eq!(num_new, 1);
    for receipt in &receipts {
        assert_eq!(receipt.payment.id, receipts[0].payment.id);
    }
    assert_eq!(app.num_rows("payments").await, 1);
    assert_eq!(app.balance(patient_id).await, -400);
    Arc::into_inner(app).unwrap().finish().await;
}

async fn parallel_refunds_never_exceed_the_payment(backend: Backend) {
    // Arrange
    let app = Arc::new(Harness::start(backend).await);
    let patient_id = app.open_account().await;
    let payment_id = app.pay(patient_id, 1000, None).await;

    // Act: ten refunds of 300 at once; only three fit.
    let mut tasks = Vec::new();
    for _ in 0..NUM_TASKS {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.service
                .refund_payment(&app.ctx, payment_id, 300, None)
                .await
        }));
    }
    let mut num_refunded = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => num_refunded += 1,
            Err(error) => assert_eq!(error.field_errors()[0].field, "amount", "{error:?}"),
        }
    }

    // Assert
    assert_eq!(num_refunded, 3);
    let payment = app.service.get_payment(&app.ctx, payment_id).await.unwrap();
    assert_eq!(payment.refunded, 900);
    assert_eq!(app.balance(patient_id).await, -100);
    Arc::into_inner(app).unwrap().finish().await;
}

/// Issues, payments and a void racing on one account: whatever order they commit in, every
/// cent is applied once.
async fn issues_and_payments_racing_stay_consistent(backend: Backend) {
    // Arrange: five drafts of 400.
    let app = Arc::new(Harness::start(backend).await);
    let patient_id = app.open_account().await;
    let mut draft_ids = Vec::new();
    for _ in 0..5 {
        let draft = app
            .service
            .create_invoice(
                &app.ctx,
                crate::helpers::invoice(patient_id, "EUR", &[(1, 400)]),
            )
            .await
            .unwrap();
        draft_ids.push(draft.id);
    }

    // Act: issue all five, pay 250 six times and void the first, all at once.
    let mut tasks = Vec::new();
    for draft_id in draft_ids.clone() {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.service
                .issue_invoice(&app.ctx, draft_id)
                .await
                .map(drop)
        }));
    }
    for _ in 0..6 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.service
                .record_payment(&app.ctx, payment(patient_id, 250, None), fresh_key())
                .await
                .map(drop)
        }));
    }
    let voided_id = draft_ids[0];
    let void_app = app.clone();
    tasks.push(tokio::spawn(async move {
        void_app
            .service
            .void_invoice(&void_app.ctx, voided_id, "race".into())
            .await
            .map(drop)
    }));
    for task in tasks {
        // The void may meet a paid invoice (Conflict); the issue may meet a void one.
        if let Err(error) = task.await.unwrap() {
            assert!(
                matches!(error, ward_core::WardError::AlreadyExists(_)),
                "{error:?}"
            );
        }
    }

    // Assert
    let mut outstanding_sum = 0;
    let mut paid_sum = 0;
    for draft_id in &draft_ids {
        let invoice = app.service.get_invoice(&app.ctx, *draft_id).await.unwrap();
        assert!(
            (0..=invoice.total).contains(&invoice.outstanding()),
            "{invoice:?}"
        );
        outstanding_sum += invoice.outstanding();
        paid_sum += invoice.paid;
    }
    let balance = app.balance(patient_id).await;
    assert_eq!(balance, app.ledger_sum(patient_id).await);
    // 1500 paid in all: what invoices did not take is credit.
    assert_eq!(balance, outstanding_sum - (1500 - paid_sum));
    Arc::into_inner(app).unwrap().finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issues_and_payments_racing_stay_consistent_on_postgres() {
    issues_and_payments_racing_stay_consistent(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issues_and_payments_racing_stay_consistent_on_sqlite() {
    issues_and_payments_racing_stay_consistent(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_payments_all_land_on_postgres() {
    parallel_payments_all_land(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_payments_all_land_on_sqlite() {
    parallel_payments_all_land(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_retries_with_one_key_record_one_payment_on_postgres() {
    parallel_retries_with_one_key_record_one_payment(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_retries_with_one_key_record_one_payment_on_sqlite() {
    parallel_retries_with_one_key_record_one_payment(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refunds_never_exceed_the_payment_on_postgres() {
    parallel_refunds_never_exceed_the_payment(Backend::Postgres).await;
}
