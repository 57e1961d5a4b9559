//! The gRPC listener: the local modules' services, the standard health service and reflection.
//!
//! Every module present in this process is served through its gRPC server adapter, so roles in
//! other processes reach it with the matching gRPC client. The health service answers for each
//! served module by its full name (`ward.v1.PatientService`) and for "" (the whole server), and
//! follows each module's own `check_ready`, so a peer whose database is down reports NOT_SERVING.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use ward_analytics::AnalyticsGrpcServer;
use ward_analytics::grpc::ANALYTICS_SERVICE_NAME;
use ward_auth::AuthGrpcServer;
use ward_auth::grpc::AUTH_SERVICE_NAME;
use ward_billing::BillingGrpcServer;
use ward_billing::grpc::BILLING_SERVICE_NAME;
use ward_bus::token::TokenVerifier;
use ward_bus::{AnalyticsClient, AuthClient, BillingClient, PatientsClient};
use ward_core::{WardError, WardResult};
use ward_patients::PatientsGrpcServer;
use ward_patients::grpc::PATIENTS_SERVICE_NAME;

/// How often the health service re-checks each served module.
const HEALTH_FOLLOW_INTERVAL: Duration = Duration::from_secs(5);

/// The health service's name for the server as a whole.
const OVERALL_SERVICE_NAME: &str = "";

/// The modules this process runs, as served over gRPC; `None` for a role that runs elsewhere
/// (a remote client must never be served again, or two processes would call each other).
#[derive(Clone, Default)]
pub struct LocalGrpcServices {
    pub auth_opt: Option<AuthClient>,
    pub patients_opt: Option<PatientsClient>,
    pub billing_opt: Option<BillingClient>,
    pub analytics_opt: Option<AnalyticsClient>,
}

impl LocalGrpcServices {
    /// Returns the full gRPC names of the services present, in role order.
    pub fn service_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.auth_opt.is_some() {
            names.push(AUTH_SERVICE_NAME);
        }
        if self.patients_opt.is_some() {
            names.push(PATIENTS_SERVICE_NAME);
        }
        if self.billing_opt.is_some() {
            names.push(BILLING_SERVICE_NAME);
        }
        if self.analytics_opt.is_some() {
            names.push(ANALYTICS_SERVICE_NAME);
        }
        names
    }

    /// Asks each present module whether it can serve, with its gRPC name.
    async fn readiness(&self) -> Vec<(&'static str, bool)> {
        let mut states = Vec::new();
        if let Some(auth) = &self.auth_opt {
            states.push((AUTH_SERVICE_NAME, auth.check_ready().await.is_ok()));
        }
        if let Some(patients) = &self.patients_opt {
            states.push((PATIENTS_SERVICE_NAME, patients.check_ready().await.is_ok()));
        }
        if let Some(billing) = &self.billing_opt {
            states.push((BILLING_SERVICE_NAME, billing.check_ready().await.is_ok()));
        }
        if let Some(analytics) = &self.analytics_opt {
            states.push((
                ANALYTICS_SERVICE_NAME,
                analytics.check_ready().await.is_ok(),
            ));
        }
        states
    }
}

/// Serves the local modules on `listener` until `cancel` fires, then drains in-flight calls.
///
/// `verifier` reads callers' bearer tokens; each module still checks rights itself. Reflection
/// (v1 and v1alpha) describes every Ward service, so `grpcurl` works without proto files.
pub async fn serve_grpc(
    listener: TcpListener,
    local: LocalGrpcServices,
    verifier: TokenVerifier,
    cancel: CancellationToken,
) -> WardResult<()> {
    let service_names = local.service_names();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for service_name in &service_names {
        health_reporter
            .set_service_status(service_name, ServingStatus::Serving)
            .await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ward_proto::v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|error| WardError::internal("cannot build gRPC reflection v1", error))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ward_proto::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|error| WardError::internal("cannot build gRPC reflection v1alpha", error))?;

    let auth_opt = local
        .auth_opt
        .clone()
        .map(|service| AuthGrpcServer::new(service, verifier.clone()).into_service());
    let patients_opt = local
        .patients_opt
        .clone()
        .map(|service| PatientsGrpcServer::new(service, verifier.clone()).into_service());
    let billing_opt = local
        .billing_opt
        .clone()
        .map(|service| BillingGrpcServer::new(service, verifier.clone()).into_service());
    let analytics_opt = local
        .analytics_opt
        .clone()
        .map(|service| AnalyticsGrpcServer::new(service, verifier.clone()).into_service());

    let follow_task = tokio::spawn(follow_readiness(
        local,
        health_reporter.clone(),
        cancel.clone(),
    ));
    let addr_opt = listener.local_addr().ok();
    tracing::info!(addr = ?addr_opt, services = ?service_names, "gRPC services started");

    let shutdown = {
        let health_reporter = health_reporter.clone();
        async move {
            cancel.cancelled().await;
            // Tell health watchers first, so balancers stop sending while calls drain.
            set_all(&health_reporter, &service_names, ServingStatus::NotServing).await;
        }
    };
    // Each call is served in a span that continues the caller's trace (`traceparent` metadata),
    // and counted by method.
    let mut builder = Server::builder()
        .trace_fn(ward_bus::trace_context::grpc_server_span)
        .layer(crate::grpc_metrics::GrpcMetricsLayer);
    let served = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_optional_service(auth_opt)
        .add_optional_service(patients_opt)
        .add_optional_service(billing_opt)
        .add_optional_service(analytics_opt)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await;
    follow_task.abort();
    served.map_err(|error| WardError::Unavailable(format!("the gRPC listener failed: {error}")))
}

/// Keeps each module's health status in step with its `check_ready` until `cancel` fires; the
/// overall status is SERVING only while every module is.
async fn follow_readiness(
    local: LocalGrpcServices,
    health_reporter: HealthReporter,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(HEALTH_FOLLOW_INTERVAL) => {}
        }
        let states = local.readiness().await;
        // Checked again: a probe may have run past the shutdown, which sets NOT_SERVING itself.
        if cancel.is_cancelled() {
            return;
        }
        let mut all_serving = true;
        for (service_name, is_ready) in states {
            all_serving &= is_ready;
            health_reporter
                .set_service_status(service_name, serving_status(is_ready))
                .await;
        }
        health_reporter
            .set_service_status(OVERALL_SERVICE_NAME, serving_status(all_serving))
            .await;
    }
}

fn serving_status(is_ready: bool) -> ServingStatus {
    if is_ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

async fn set_all(
    health_reporter: &HealthReporter,
    service_names: &[&'static str],
    status: ServingStatus,
) {
    for service_name in service_names {
        health_reporter
            .set_service_status(service_name, status)
            .await;
    }
    health_reporter
        .set_service_status(OVERALL_SERVICE_NAME, status)
        .await;
}
