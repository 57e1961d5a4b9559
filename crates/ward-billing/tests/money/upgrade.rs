//! A billing database from before the ledger gains it, and the account's `currency` column.

use ward_billing::BillingService;
use ward_bus::BillingApi;
use ward_bus::testsuite::sqlite_in;

use crate::helpers::caller;

#[tokio::test]
async fn an_existing_billing_database_gains_the_ledger_and_the_currency_column() {
    // Arrange: billing_accounts as the first migration created it, without `currency`.
    let folder =
        std::env::temp_dir().join(format!("ward-billing-upgrade-{}", uuid::Uuid::new_v4()));
    let db = sqlite_in(&folder, "billing").await;
    let patient_id = uuid::Uuid::now_v7();
    sea_orm::ConnectionTrait::execute_unprepared(
        &db,
        "CREATE TABLE billing_accounts (id uuid_text NOT NULL PRIMARY KEY, patient_id uuid_text \
         NOT NULL UNIQUE, status varchar NOT NULL, opened_at timestamp_with_timezone_text NOT \
         NULL, patient_name varchar NOT NULL, patient_email varchar NOT NULL)",
    )
    .await
    .unwrap();

    // Act
    BillingService::migrate(&db).await.unwrap();
    BillingService::migrate(&db).await.unwrap();
    let relay = ward_bus::outbox::OutboxRelay::new(
        "billing",
        db.clone(),
        std::sync::Arc::new(
            ward_bus::local_log::LocalEventLog::open(&ward_bus::testsuite::sqlite_url(
                &folder, "events",
            ))
            .await
            .unwrap(),
        ),
    );
    let service = BillingService::new(db.clone(), relay.waker());
    let ctx = caller(ward_core::UserRole::Billing);
    service
        .create_billing_account(
            &ctx,
            ward_bus::billing::OpenAccountRequest {
                patient_id,
                name: "Ann".into(),
                email: "ann@example.com".into(),
            },
        )
        .await
        .unwrap();
    let account = service
        .get_account_by_patient(&ctx, patient_id)
        .await
        .unwrap();

    // Assert
    assert_eq!((account.currency_opt, account.balance), (None, 0));
    let _ = std::fs::remove_dir_all(&folder);
}
