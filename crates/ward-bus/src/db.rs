//! Opening a module's database: SQLite embedded or PostgreSQL, with settings that keep
//! acknowledged writes durable.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use ward_core::config::SecretUrl;
use ward_core::{WardError, WardResult};

/// Connects to `url`; for SQLite, creates the file's folder, enables WAL, a busy timeout (several
/// processes may share the local event log) and `synchronous=FULL`, so a 201 survives power loss.
pub async fn connect(url: &SecretUrl, name: &str) -> WardResult<DatabaseConnection> {
    let raw = url.expose();
    if url.is_sqlite() {
        ensure_sqlite_folder(raw)?;
    }
    let mut options = ConnectOptions::new(raw.to_string());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    if url.is_sqlite() {
        options.max_connections(8).min_connections(1);
        options.map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    } else {
        options.max_connections(16).min_connections(1);
    }
    let mut db = Database::connect(options).await.map_err(|error| {
        WardError::Unavailable(format!(
            "cannot open the {name} database at {}: {error}",
            url.redacted()
        ))
    })?;
    crate::metrics::instrument_database(name, &mut db);
    Ok(db)
}

/// Options for a transaction that will write. On SQLite the write lock is taken at BEGIN
/// (IMMEDIATE), so a read-then-write transaction never fails on a lock upgrade while another
/// process writes; it waits for the busy timeout instead. PostgreSQL ignores the mode.
pub fn write_transaction() -> sea_orm::TransactionOptions {
    sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..sea_orm::TransactionOptions::default()
    }
}

/// Ok when the database answers a trivial query.
pub async fn ping(db: &DatabaseConnection, name: &str) -> WardResult<()> {
    db.execute_unprepared("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|error| {
            WardError::Unavailable(format!("the {name} database does not answer: {error}"))
        })
}

/// Maps a database error met while serving a request.
pub fn db_error(context: &str, error: sea_orm::DbErr) -> WardError {
    match &error {
        sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => {
            WardError::Unavailable(format!("{context}: database unavailable"))
        }
        _ => WardError::internal(context, error),
    }
}

/// Whether `error` is a unique-constraint violation (SQLite and PostgreSQL alike).
pub fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

fn ensure_sqlite_folder(url: &str) -> WardResult<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    create_parent_dir(std::path::Path::new(path))
}

/// Creates the folder a file will live in, if it has one.
pub(crate) fn create_parent_dir(path: &std::path::Path) -> WardResult<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(parent).map_err(|error| {
        WardError::Unavailable(format!("cannot create {}: {error}", parent.display()))
    })
}
