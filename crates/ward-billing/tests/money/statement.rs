//! Statements over UTC days, `to` inclusive.

use chrono::Days;
use ward_bus::BillingApi;
use ward_core::WardError;

use crate::helpers::{Backend, Harness, today};

async fn a_statement_sums_its_days_and_everything_before_them(backend: Backend) {
    // Arrange
    let app = Harness::start(backend).await;
    let patient_id = app.open_account().await;
    app.issued_invoice(patient_id, 1000).await;
    app.pay(patient_id, 300, None).await;
    let yesterday = today().checked_sub_days(Days::new(1)).unwrap();
    let tomorrow = today().checked_add_days(Days::new(1)).unwrap();

    // Act
    let whole = app
        .service
        .statement(&app.ctx, patient_id, None, None)
        .await
        .unwrap();
    let today_only = app
        .service
        .statement(&app.ctx, patient_id, Some(today()), Some(today()))
        .await
        .unwrap();
    let after = app
        .service
        .statement(&app.ctx, patient_id, Some(tomorrow), None)
        .await
        .unwrap();
    let before = app
        .service
        .statement(&app.ctx, patient_id, None, Some(yesterday))
        .await
        .unwrap();
    let reversed = app
        .service
        .statement(&app.ctx, patient_id, Some(tomorrow), Some(today()))
        .await
        .unwrap_err();
    let missing = app
        .service
        .statement(&app.ctx, uuid::Uuid::now_v7(), None, None)
        .await
        .unwrap_err();

    // Assert
    assert_eq!((whole.opening_balance, whole.closing_balance), (0, 700));
    assert_eq!(whole.entries.len(), 2);
    assert_eq!(whole.currency_opt.unwrap().as_str(), "EUR");
    assert_eq!(today_only.entries, whole.entries, "to is inclusive");
    assert_eq!((after.opening_balance, after.closing_balance), (700, 700));
    assert!(after.entries.is_empty());
    assert!(before.entries.is_empty());
    assert_eq!(before.closing_balance, 0);
    assert_eq!(reversed.field_errors()[0].field, "from");
    assert!(matches!(missing, WardError::NotFound(_)));
    app.finish().await;
}

#[tokio::test]
async fn a_statement_sums_its_days_and_everything_before_them_on_sqlite() {
    a_statement_sums_its_days_and_everything_before_them(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_statement_sums_its_days_and_everything_before_them_on_postgres() {
    a_statement_sums_its_days_and_everything_before_them(Backend::Postgres).await;
}
