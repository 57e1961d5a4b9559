//! The analytics module through the network: the real service and consumer on real SQLite files,
//! behind `AnalyticsGrpcServer` on a loopback port, called through `AnalyticsGrpcClient`.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use uuid::Uuid;
use ward_analytics::grpc::ANALYTICS_SERVICE_NAME;
use ward_analytics::{AnalyticsGrpcClient, AnalyticsGrpcServer, AnalyticsService, events_consumer};
use ward_bus::AnalyticsApi;
use ward_bus::analytics::{DailyCount, ReceivablesQuery, TimeseriesInput, TimeseriesQuery};
use ward_bus::events::{
    BILLING_TOPIC, BillingAccountOpened, EventLogHandle, OutgoingRecord, PATIENTS_TOPIC,
    PatientRegistered, encode_envelope, envelope,
};
use ward_bus::grpc::connect_peer;
use ward_bus::local_log::LocalEventLog;
use ward_bus::testsuite::{TestKeys, serve_on_loopback, sqlite_in, sqlite_url};
use ward_core::{ErrorCode, Role, UserRole};

/// An analytics service served over gRPC from its own temporary folder, removed when dropped.
struct TestPeer {
    keys: TestKeys,
    db: DatabaseConnection,
    log: EventLogHandle,
    client: AnalyticsGrpcClient,
    server_task: JoinHandle<()>,
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.server_task.abort();
    }
}

impl TestPeer {
    async fn start() -> Self {
        let keys = TestKeys::generate("analytics-grpc");
        let db = sqlite_in(keys.folder(), "analytics").await;
        AnalyticsService::migrate(&db).await.unwrap();
        let log: EventLogHandle = Arc::new(
            LocalEventLog::open(&sqlite_url(keys.folder(), "events"))
                .await
                .unwrap(),
        );
        let service: Arc<dyn AnalyticsApi> = Arc::new(AnalyticsService::new(db.clone()));
        let grpc_service =
            AnalyticsGrpcServer::new(service, keys.verifier().clone()).into_service();
        let (address, server_task) =
            serve_on_loopback(Routes::new(grpc_service), &[ANALYTICS_SERVICE_NAME]).await;

        let addresses = vec![address];
        let channel = connect_peer(Role::Analytics, &addresses).await.unwrap();
        let client = AnalyticsGrpcClient::new(channel).with_addresses(&addresses);
        Self {
            keys,
            db,
            log,
            client,
            server_task,
        }
    }
}

fn registration(patient_id: Uuid, registered_date: &str) -> OutgoingRecord {
    let payload = PatientRegistered {
        patient_id: patient_id.to_string(),
        name: "John Doe".into(),
        email: "john.doe@example.com".into(),
        registered_date: registered_date.into(),
        version: 1,
    };
    OutgoingRecord {
        topic: PATIENTS_TOPIC.to_string(),
        key: patient_id.to_string(),
        value: encode_envelope(&envelope("patients", patient_id, "", Utc::now(), &payload)),
    }
}

fn account_opened(patient_id: Uuid) -> OutgoingRecord {
    let payload = BillingAccountOpened {
        account_id: Uuid::now_v7().to_string(),
        patient_id: patient_id.to_string(),
        opened_at: Utc::now().to_rfc3339(),
    };
    OutgoingRecord {
        topic: BILLING_TOPIC.to_string(),
        key: patient_id.to_string(),
        value: encode_envelope(&envelope("billing", patient_id, "", Utc::now(), &payload)),
    }
}

#[tokio::test]
async fn the_summary_arrives_whole_through_the_network() {
    // Arrange: two registrations on one day, one on another, one account opened.
    let peer = TestPeer::start().await;
    let (alice, bob, carol) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    peer.log
        .append(vec![
            registration(alice, "2024-02-01"),
            registration(bob, "2024-01-10"),
            registration(carol, "2024-01-10"),
            account_opened(alice),
        ])
        .await
        .unwrap();
    let consumer = events_consumer(peer.db.clone(), peer.log.clone());
    assert_eq!(consumer.consume_once().await.unwrap(), 4);
    peer.client.check_ready().await.unwrap();

    // Act
    let summary = peer
        .client
        .summary(&peer.keys.caller(UserRole::Analyst))
        .await
        .unwrap();

    // Assert
    assert_eq!(summary.patients_registered, 3);
    assert_eq!(summary.patients_deleted, 0);
    assert_eq!(summary.billing_accounts_opened, 1);
    let events_by_type: Vec<(&str, u64)> = summary
        .events_by_type
        .iter()
        .map(|(event_type, count)| (event_type.as_str(), *count))
        .collect();
    assert_eq!(
        events_by_type,
        vec![("BillingAccountOpened", 1), ("PatientRegistered", 3)]
    );
    assert_eq!(
        summary.registrations_by_day,
        vec![
            DailyCount {
                date: NaiveDate::from_ymd_opt(2024, 1, 10).unwrap(),
                count: 2,
            },
            DailyCount {
                date: NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
                count: 1,
            },
        ]
    );
}

#[tokio::test]
async fn figures_need_the_analytics_right_remotely_too() {
    // Arrange
    let peer = TestPeer::start().await;

    // Act
    let anonymous = peer
        .client
        .summary(&peer.keys.anonymous())
        .await
        .unwrap_err();
    let clinician = peer
        .client
        .summary(&peer.keys.caller(UserRole::Clinician))
        .await
        .unwrap_err();

    // Assert
    assert_eq!(anonymous.error_code(), ErrorCode::Unauthenticated);
    assert_eq!(clinician.error_code(), ErrorCode::Forbidden);
}

#[tokio::test]
async fn timeseries_and_receivables_arrive_whole_and_errors_keep_their_field() {
    // Arrange: three registrations over two days.
    let peer = TestPeer::start().await;
    let (alice, bob, carol) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    peer.log
        .append(vec![
            registration(alice, "2024-01-10"),
            registration(bob, "2024-01-10"),
            registration(carol, "2024-01-12"),
        ])
        .await
        .unwrap();
    let consumer = events_consumer(peer.db.clone(), peer.log.clone());
    assert_eq!(consumer.consume_once().await.unwrap(), 3);
    let analyst = peer.keys.caller(UserRole::Analyst);
    let query = TimeseriesQuery::parse(
        TimeseriesInput {
            metric_opt: Some("registrations"),
            from_opt: Some("2024-01-09"),
            to_opt: Some("2024-01-12"),
            interval_opt: Some("day"),
            currency_opt: None,
        },
        NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
    )
    .unwrap();

    // Act
    let timeseries = peer
        .client
        .timeseries(&analyst, query.clone())
        .await
        .unwrap();
    let receivables = peer
        .client
        .receivables(
            &analyst,
            ReceivablesQuery {
                currency_opt: None,
                as_of: NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
            },
        )
        .await
        .unwrap();
    let refused = peer
        .client
        .timeseries(&peer.keys.caller(UserRole::Clinician), query)
        .await
        .unwrap_err();

    // Assert
    let values: Vec<i64> = timeseries.points.iter().map(|point| point.value).collect();
    assert_eq!(values, [0, 2, 0, 1]);
    assert_eq!(timeseries.currency_opt, None);
    assert_eq!(receivables.currency_opt, None);
    assert_eq!(receivables.buckets.total(), 0);
    assert_eq!(refused.error_code(), ErrorCode::Forbidden);
}
