//! Test support shared by the module crates' integration tests, behind the `testsuite` feature.
//!
//! A module's gRPC test needs the same scaffolding every time: a temporary folder, a real key
//! pair, a SQLite file and a server on a loopback port. Only the module's own service differs,
//! so that part stays in each test and everything around it lives here.

use std::path::{Path, PathBuf};

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use uuid::Uuid;
use ward_core::config::SecretUrl;
use ward_core::{CallerContext, UserRole};

use crate::auth::UserInfo;
use crate::token::{TokenIssuer, TokenVerifier, generate_key_files};

/// How long tokens from [`TestKeys::caller`] stay valid; longer than any test runs.
const CALLER_TOKEN_TTL_SECS: u64 = 600;

/// A fresh temporary folder holding a real key pair, removed when dropped.
///
/// Tests put their SQLite files in [`TestKeys::folder`] too, so one drop cleans up everything.
pub struct TestKeys {
    folder: PathBuf,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
}

impl TestKeys {
    /// Returns keys in a new folder `ward-{label}-{uuid}` under the system temp folder.
    pub fn generate(label: &str) -> Self {
        let folder = std::env::temp_dir().join(format!("ward-{label}-{}", Uuid::now_v7()));
        let private_path = folder.join("auth.key");
        let public_path = folder.join("auth.pub");
        generate_key_files(&private_path, &public_path).expect("cannot generate test keys");
        let issuer = TokenIssuer::from_file(&private_path).expect("cannot read test private key");
        let verifier = TokenVerifier::from_file(&public_path).expect("cannot read test public key");
        Self {
            folder,
            issuer,
            verifier,
        }
    }

    /// Returns the temporary folder, for databases that should go away with the keys.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Returns the issuer, for services that hand out tokens themselves (auth).
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// Returns the verifier a gRPC server adapter checks bearer tokens with.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Returns a caller holding a real token for `role`, as the gateway would forward it.
    pub fn caller(&self, role: UserRole) -> CallerContext {
        let user = UserInfo {
            id: Uuid::now_v7(),
            email: format!("{role}@ward.test"),
            role,
            disabled: false,
        };
        let now = Utc::now();
        let session = self
            .issuer
            .issue(&user, Uuid::now_v7(), CALLER_TOKEN_TTL_SECS, now)
            .expect("cannot issue a test token");
        let principal = self
            .verifier
            .verify(&session.token, now)
            .expect("cannot verify a test token");
        CallerContext::authenticated(principal, session.token, format!("req-{role}"))
    }

    /// Returns a caller without a token.
    ///
    /// A method rather than a free function so scenarios read `keys.caller(..)` and
    /// `keys.anonymous()` alike.
    pub fn anonymous(&self) -> CallerContext {
        CallerContext::anonymous("req-anonymous")
    }
}

impl Drop for TestKeys {
    fn drop(&mut self) {
        // Best effort: a leftover temp folder must not fail the test that made it.
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// Returns the URL of the SQLite file `{name}.db` in `folder`, created on first use.
pub fn sqlite_url(folder: &Path, name: &str) -> SecretUrl {
    let path = folder.join(format!("{name}.db"));
    SecretUrl::new(format!("sqlite://{}?mode=rwc", path.display()))
}

/// Returns a connection to the SQLite file `{name}.db` in `folder`, opened as `name`.
pub async fn sqlite_in(folder: &Path, name: &str) -> DatabaseConnection {
    crate::db::connect(&sqlite_url(folder, name), name)
        .await
        .expect("cannot open the test database")
}

/// Serves `routes` plus a gRPC health service on a free loopback port.
///
/// Each name in `serving_names` is reported SERVING; pass none for a server that answers health
/// checks but knows no Ward service. Returns the `http://` address to dial and the server task;
/// abort the task to stop serving.
pub async fn serve_on_loopback(routes: Routes, serving_names: &[&str]) -> (String, JoinHandle<()>) {
    // Bound first and handed to the server: no port is probed and released.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("cannot bind a loopback port");
    let local_addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for service_name in serving_names {
        health_reporter
            .set_service_status(service_name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let server_task = tokio::spawn(async move {
        Server::builder()
            .add_routes(routes)
            .add_service(health_service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .expect("the loopback gRPC server failed");
    });
    (format!("http://{local_addr}"), server_task)
}

/// A fresh PostgreSQL database for one test, on the server named by `WARD_TEST_POSTGRES_URL`
/// (default: the local one). Missing PostgreSQL fails the test loudly: nothing is skipped.
pub struct TestPostgres {
    admin: DatabaseConnection,
    db: DatabaseConnection,
    url: SecretUrl,
    module: String,
    name: String,
}

impl TestPostgres {
    /// Creates database `ward_{label}_{uuid}` and connects to it as `module`.
    pub async fn create(label: &str, module: &str) -> Self {
        use sea_orm::ConnectionTrait;
        let base = std::env::var("WARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("ward_{label}_{}", Uuid::now_v7().simple());
        let admin = sea_orm::Database::connect(format!("{base}/postgres"))
            .await
            .unwrap_or_else(|error| {
                panic!("PostgreSQL is required for this test ({base}): {error}")
            });
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("cannot create a test database");
        let url = SecretUrl::new(format!("{base}/{name}"));
        let db = crate::db::connect(&url, module)
            .await
            .expect("cannot connect to the test database");
        Self {
            admin,
            db,
            url,
            module: module.to_string(),
            name,
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Another connection pool to the same database, as a second task of the module would open.
    pub async fn connect_again(&self) -> DatabaseConnection {
        crate::db::connect(&self.url, &self.module)
            .await
            .expect("cannot connect to the test database again")
    }

    /// Closes the connection and drops the database (best effort).
    pub async fn drop_database(self) {
        use sea_orm::ConnectionTrait;
        let _ = self.db.close().await;
        let _ = self
            .admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}
