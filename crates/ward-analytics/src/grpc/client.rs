//! [`AnalyticsGrpcClient`]: the analytics module in another process, behind the same trait.

use async_trait::async_trait;
use tonic::transport::Channel;
use ward_bus::AnalyticsApi;
use ward_bus::analytics::{Receivables, ReceivablesQuery, Summary, Timeseries, TimeseriesQuery};
use ward_bus::grpc::{
    call_with_reconnect, check_serving, error_from_peer_status, malformed_reply, outgoing_request,
    peer_description,
};
use ward_core::{CallerContext, Role, WardResult};
use ward_proto::v1 as proto;
use ward_proto::v1::analytics_service_client::AnalyticsServiceClient;

use super::{
    ANALYTICS_SERVICE_NAME, receivables_from_proto, receivables_query_to_proto, summary_from_proto,
    timeseries_from_proto, timeseries_query_to_proto,
};

/// Calls a remote analytics role over a (balanced, lazily connected) gRPC channel.
///
/// The caller's token and request id travel in metadata; the remote module authorizes the call
/// itself. Errors come back with their kind intact (see [`ward_bus::grpc`]). A call whose
/// connection failed before it was sent is tried again (see [`call_with_reconnect`]), so a peer
/// restarted on its port answers the next call.
#[derive(Debug, Clone)]
pub struct AnalyticsGrpcClient {
    channel: Channel,
    /// Names the peer in transport errors: "analytics peer at http://…".
    peer: String,
}

impl AnalyticsGrpcClient {
    /// Returns a client over `channel` (see [`ward_bus::grpc::connect_peer`]).
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            peer: peer_description(Role::Analytics, &[]),
        }
    }

    /// Names `addresses` in the errors and readiness reasons this client gives.
    pub fn with_addresses(mut self, addresses: &[String]) -> Self {
        self.peer = peer_description(Role::Analytics, addresses);
        self
    }
}

#[async_trait]
impl AnalyticsApi for AnalyticsGrpcClient {
    async fn summary(&self, ctx: &CallerContext) -> WardResult<Summary> {
        let response = call_with_reconnect(|| {
            let mut client = AnalyticsServiceClient::new(self.channel.clone());
            let request = outgoing_request(proto::SummaryRequest {}, ctx);
            async move { client.get_summary(request).await }
        })
        .await
        .map_err(|status| error_from_peer_status(&status, &self.peer))?;
        summary_from_proto(response.into_inner())
            .map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn timeseries(
        &self,
        ctx: &CallerContext,
        query: TimeseriesQuery,
    ) -> WardResult<Timeseries> {
        let message = timeseries_query_to_proto(&query);
        let response = call_with_reconnect(|| {
            let mut client = AnalyticsServiceClient::new(self.channel.clone());
            let request = outgoing_request(message.clone(), ctx);
            async move { client.get_timeseries(request).await }
        })
        .await
        .map_err(|status| error_from_peer_status(&status, &self.peer))?;
        timeseries_from_proto(response.into_inner())
            .map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn receivables(
        &self,
        ctx: &CallerContext,
        query: ReceivablesQuery,
    ) -> WardResult<Receivables> {
        let message = receivables_query_to_proto(&query);
        let response = call_with_reconnect(|| {
            let mut client = AnalyticsServiceClient::new(self.channel.clone());
            let request = outgoing_request(message.clone(), ctx);
            async move { client.get_receivables(request).await }
        })
        .await
        .map_err(|status| error_from_peer_status(&status, &self.peer))?;
        receivables_from_proto(response.into_inner())
            .map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn check_ready(&self) -> WardResult<()> {
        check_serving(self.channel.clone(), ANALYTICS_SERVICE_NAME, &self.peer).await
    }
}
