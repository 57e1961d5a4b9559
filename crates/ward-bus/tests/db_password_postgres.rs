//! A module database reached with `database.<module>_password` (the RDS-managed secret ECS
//! injects as WARD_DATABASE__PATIENTS_PASSWORD) and a URL that names only the user. Needs
//! PostgreSQL (WARD_TEST_POSTGRES_URL, default the local server).
//!
//! The local server trusts 127.0.0.1, so it would let the role in with any password: the test
//! therefore also checks that the driver reads back exactly the password that was configured.

use std::str::FromStr;

use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use uuid::Uuid;
use ward_core::Role;
use ward_core::config::{Config, ConfigSources};

/// Every character that needs percent-encoding in a URL's userinfo, and a non-ASCII one.
const PASSWORD: &str = "p@ss w:rd/1?#%&=+é";

#[tokio::test]
async fn a_module_connects_with_its_configured_password() {
    // Arrange: a login role with a password, owning a fresh database.
    let base = std::env::var("WARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let suffix = Uuid::now_v7().simple().to_string();
    let role_name = format!("ward_pw_{suffix}");
    let database = format!("ward_pw_{suffix}");
    let admin = Database::connect(format!("{base}/postgres"))
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL is required for this test ({base}): {error}"));
    admin
        .execute_unprepared(&format!(
            "CREATE ROLE {role_name} LOGIN PASSWORD '{PASSWORD}'"
        ))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {database} OWNER {role_name}"))
        .await
        .unwrap();
    let host = base
        .rsplit_once('@')
        .map(|(_, host)| host.to_string())
        .unwrap_or_else(|| "127.0.0.1:5432".into());

    // Act: the configuration as an ECS task gets it: a URL without a password, and the secret.
    let config = Config::load(&ConfigSources {
        explicit_file: None,
        overrides: vec![
            (
                "database.patients".into(),
                format!("postgres://{role_name}@{host}/{database}").into(),
            ),
            ("database.patients_password".into(), PASSWORD.into()),
        ],
    })
    .unwrap();
    let url = config.database.url_for(Role::Patients).unwrap();
    let db = ward_bus::db::connect(url, "patients").await.unwrap();

    // Assert: the URL carries the password encoded, the driver decodes it to the exact text, and
    // the module works as that role.
    assert_eq!(
        url.expose(),
        format!(
            "postgres://{role_name}:p%40ss%20w%3Ard%2F1%3F%23%25%26%3D%2B%C3%A9@{host}/{database}"
        )
    );
    assert_eq!(
        url.redacted(),
        format!("postgres://{role_name}:***@{host}/{database}")
    );
    let options = PgConnectOptions::from_str(url.expose()).unwrap();
    assert_eq!(options.get_username(), role_name);
    let driver_view = format!("{options:?}");
    assert!(
        driver_view.contains(&format!("password: Some({PASSWORD:?})")),
        "the driver would not send the configured password"
    );
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_user::text AS name",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<String>("", "name").unwrap(), role_name);
    db.execute_unprepared("CREATE TABLE owned_by_the_module (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();

    db.close().await.unwrap();
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await;
    let _ = admin
        .execute_unprepared(&format!("DROP ROLE IF EXISTS {role_name}"))
        .await;
}
