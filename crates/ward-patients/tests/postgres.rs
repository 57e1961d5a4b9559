//! The patients schema on PostgreSQL: the audit trail is append-only in the database itself.
//! Needs PostgreSQL (WARD_TEST_POSTGRES_URL, default the local server).

use sea_orm::ConnectionTrait;
use ward_bus::PatientsApi;
use ward_bus::outbox::OutboxWaker;
use ward_bus::patients::PageRequest;
use ward_bus::testsuite::{TestKeys, TestPostgres};
use ward_core::UserRole;
use ward_patients::PatientsService;

#[tokio::test]
async fn the_audit_trail_cannot_be_edited_deleted_or_truncated() {
    let postgres = TestPostgres::create("patients", "patients").await;
    let db = postgres.db();
    PatientsService::migrate(db).await.unwrap();
    PatientsService::migrate(db).await.unwrap();
    let service = PatientsService::new(db.clone(), OutboxWaker::default());
    let keys = TestKeys::generate("patients-pg");
    let page = PageRequest {
        limit: 10,
        after_opt: None,
    };
    service
        .list_patients(&keys.caller(UserRole::Clinician), page)
        .await
        .unwrap();

    for statement in [
        "UPDATE audit_events SET outcome = 'denied'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let error = db.execute_unprepared(statement).await.unwrap_err();
        assert!(
            error.to_string().contains("append-only"),
            "{statement}: {error}"
        );
    }
    let count = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM audit_events",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(count, 1);
    postgres.drop_database().await;
}
