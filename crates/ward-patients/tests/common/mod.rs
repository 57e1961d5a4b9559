//! The database every service test file opens: a migrated SQLite file in its own temporary
//! folder, removed when dropped. Each file adds the helpers it needs in its own `impl TestDb`.

// Each test file is its own crate and uses a different part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

use sea_orm::DatabaseConnection;
use uuid::Uuid;
use ward_bus::outbox::OutboxWaker;
use ward_core::config::SecretUrl;
use ward_patients::PatientsService;

pub struct TestDb {
    pub dir: PathBuf,
    pub db: DatabaseConnection,
    pub service: PatientsService,
}

impl TestDb {
    /// A migrated database in `ward-{label}-{uuid}` under the system temp folder.
    pub async fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ward-{label}-{}", Uuid::now_v7()));
        let url = SecretUrl::new(format!(
            "sqlite://{}?mode=rwc",
            dir.join("patients.db").display()
        ));
        let db = ward_bus::db::connect(&url, "patients").await.unwrap();
        PatientsService::migrate(&db).await.unwrap();
        let service = PatientsService::new(db.clone(), OutboxWaker::default());
        Self { dir, db, service }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
