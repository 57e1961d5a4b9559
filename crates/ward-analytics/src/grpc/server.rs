//! [`AnalyticsGrpcServer`]: serves any [`AnalyticsApi`] implementation as
//! `ward.v1.AnalyticsService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use ward_bus::AnalyticsApi;
use ward_bus::grpc::{caller_from_request, respond};
use ward_bus::token::TokenVerifier;
use ward_proto::v1 as proto;
use ward_proto::v1::analytics_service_server::{AnalyticsService, AnalyticsServiceServer};

use super::{
    receivables_query_from_proto, receivables_to_proto, summary_to_proto,
    timeseries_query_from_proto, timeseries_to_proto,
};

/// The gRPC face of an analytics module: builds the caller from metadata, calls the trait, and
/// answers errors through the one table.
pub struct AnalyticsGrpcServer {
    service: Arc<dyn AnalyticsApi>,
    verifier: TokenVerifier,
}

impl AnalyticsGrpcServer {
    /// Returns an adapter over `service`; `verifier` reads callers' bearer tokens.
    pub fn new(service: Arc<dyn AnalyticsApi>, verifier: TokenVerifier) -> Self {
        Self { service, verifier }
    }

    /// Returns the tonic service to add to a server.
    pub fn into_service(self) -> AnalyticsServiceServer<Self> {
        AnalyticsServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl AnalyticsService for AnalyticsGrpcServer {
    async fn get_summary(
        &self,
        request: Request<proto::SummaryRequest>,
    ) -> Result<Response<proto::Summary>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = self.service.summary(&ctx).await;
        respond(&ctx, "GetSummary", result.map(summary_to_proto))
    }

    async fn get_timeseries(
        &self,
        request: Request<proto::TimeseriesRequest>,
    ) -> Result<Response<proto::Timeseries>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match timeseries_query_from_proto(request.get_ref()) {
            Ok(query) => self.service.timeseries(&ctx, query).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "GetTimeseries", result.map(timeseries_to_proto))
    }

    async fn get_receivables(
        &self,
        request: Request<proto::ReceivablesRequest>,
    ) -> Result<Response<proto::Receivables>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match receivables_query_from_proto(request.get_ref()) {
            Ok(query) => self.service.receivables(&ctx, query).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "GetReceivables", result.map(receivables_to_proto))
    }
}
