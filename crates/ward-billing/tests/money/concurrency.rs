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
