//! [`BillingGrpcClient`]: the billing module in another process, behind the same trait.

use async_trait::async_trait;
use chrono::NaiveDate;
use tonic::Status;
use tonic::transport::Channel;
use uuid::Uuid;
use ward_bus::BillingApi;
use ward_bus::billing::{BillingAccount, OpenAccountRequest};
use ward_bus::billing::{
    Invoice, InvoicePage, InvoiceQuery, LedgerEntry, NewAdjustment, NewInvoice, NewPayment,
    Payment, PaymentReceipt, Refund, Statement,
};
use ward_bus::grpc::{
    call_with_reconnect, check_serving, error_from_peer_status, malformed_reply, outgoing_request,
    peer_description,
};
use ward_bus::patients::IdempotencyKey;
use ward_core::{CallerContext, Role, WardError, WardResult};
use ward_proto::v1 as proto;
use ward_proto::v1::billing_service_client::BillingServiceClient;

use super::{BILLING_SERVICE_NAME, account_from_proto, account_from_response};

/// Calls a remote billing role over a (balanced, lazily connected) gRPC channel.
///
/// The caller's token and request id travel in metadata; the remote module authorizes the call
/// itself. Errors come back with their kind intact (see [`ward_bus::grpc`]). A call whose
/// connection failed before it was sent is tried again (see [`call_with_reconnect`]), so a peer
/// restarted on its port answers the next call.
#[derive(Debug, Clone)]
pub struct BillingGrpcClient {
    channel: Channel,
    /// Names the peer in transport errors: "billing peer at http://…".
    peer: String,
}

impl BillingGrpcClient {
    /// Returns a client over `channel` (see [`ward_bus::grpc::connect_peer`]).
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            peer: peer_description(Role::Billing, &[]),
        }
    }

    /// Names `addresses` in the errors and readiness reasons this client gives.
    pub fn with_addresses(mut self, addresses: &[String]) -> Self {
        self.peer = peer_description(Role::Billing, addresses);
        self
    }

    fn client(&self) -> BillingServiceClient<Channel> {
        BillingServiceClient::new(self.channel.clone())
    }

    fn error(&self, status: Status) -> WardError {
        error_from_peer_status(&status, &self.peer)
    }
}

#[async_trait]
impl BillingApi for BillingGrpcClient {
    async fn create_billing_account(
        &self,
        ctx: &CallerContext,
        request: OpenAccountRequest,
    ) -> WardResult<BillingAccount> {
        let message = proto::BillingRequest {
            patient_id: request.patient_id.to_string(),
            name: request.name,
            email: request.email,
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.create_billing_account(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        account_from_response(response.get_ref())
            .map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn get_account_by_patient(
        &self,
        ctx: &CallerContext,
        patient_id: Uuid,
    ) -> WardResult<BillingAccount> {
        let message = proto::GetAccountByPatientRequest {
            patient_id: patient_id.to_string(),
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.get_account_by_patient(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        account_from_proto(response.get_ref()).map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn create_invoice(
        &self,
        _ctx: &CallerContext,
        _invoice: NewInvoice,
    ) -> WardResult<Invoice> {
        todo!("billing-wire")
    }
    async fn get_invoice(&self, _ctx: &CallerContext, _invoice_id: Uuid) -> WardResult<Invoice> {
        todo!("billing-wire")
    }
    async fn list_invoices(
        &self,
        _ctx: &CallerContext,
        _query: InvoiceQuery,
    ) -> WardResult<InvoicePage> {
        todo!("billing-wire")
    }
    async fn issue_invoice(&self, _ctx: &CallerContext, _invoice_id: Uuid) -> WardResult<Invoice> {
        todo!("billing-wire")
    }
    async fn void_invoice(
        &self,
        _ctx: &CallerContext,
        _invoice_id: Uuid,
        _reason: String,
    ) -> WardResult<Invoice> {
        todo!("billing-wire")
    }
    async fn record_payment(
        &self,
        _ctx: &CallerContext,
        _payment: NewPayment,
        _key: IdempotencyKey,
    ) -> WardResult<PaymentReceipt> {
        todo!("billing-wire")
    }
    async fn get_payment(&self, _ctx: &CallerContext, _payment_id: Uuid) -> WardResult<Payment> {
        todo!("billing-wire")
    }
    async fn refund_payment(
        &self,
        _ctx: &CallerContext,
        _payment_id: Uuid,
        _amount: i64,
        _key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Refund> {
        todo!("billing-wire")
    }
    async fn post_adjustment(
        &self,
        _ctx: &CallerContext,
        _adjustment: NewAdjustment,
    ) -> WardResult<LedgerEntry> {
        todo!("billing-wire")
    }
    async fn statement(
        &self,
        _ctx: &CallerContext,
        _patient_id: Uuid,
        _from_opt: Option<NaiveDate>,
        _to_opt: Option<NaiveDate>,
    ) -> WardResult<Statement> {
        todo!("billing-wire")
    }
    async fn check_ready(&self) -> WardResult<()> {
        check_serving(self.channel.clone(), BILLING_SERVICE_NAME, &self.peer).await
    }
}
