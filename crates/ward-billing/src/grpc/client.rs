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
use ward_bus::patients::{IdempotencyKey, format_date};
use ward_core::{CallerContext, Role, WardError, WardResult};
use ward_proto::v1 as proto;
use ward_proto::v1::billing_service_client::BillingServiceClient;

use super::convert::{
    invoice_from_proto, invoice_page_from_proto, invoice_query_to_proto, ledger_entry_from_proto,
    new_adjustment_to_proto, new_invoice_to_proto, new_payment_to_proto, payment_from_proto,
    receipt_from_proto, refund_from_proto, statement_from_proto,
};
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

    fn malformed(&self, error: WardError) -> WardError {
        malformed_reply(&self.peer, error)
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
        ctx: &CallerContext,
        invoice: NewInvoice,
    ) -> WardResult<Invoice> {
        let message = new_invoice_to_proto(invoice);
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.create_invoice(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        invoice_from_proto(response.into_inner()).map_err(|error| self.malformed(error))
    }

    async fn get_invoice(&self, ctx: &CallerContext, invoice_id: Uuid) -> WardResult<Invoice> {
        let message = proto::InvoiceIdRequest {
            invoice_id: invoice_id.to_string(),
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.get_invoice(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        invoice_from_proto(response.into_inner()).map_err(|error| self.malformed(error))
    }

    async fn list_invoices(
        &self,
        ctx: &CallerContext,
        query: InvoiceQuery,
    ) -> WardResult<InvoicePage> {
        let message = invoice_query_to_proto(query);
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.list_invoices(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        invoice_page_from_proto(response.into_inner()).map_err(|error| self.malformed(error))
    }

    async fn issue_invoice(&self, ctx: &CallerContext, invoice_id: Uuid) -> WardResult<Invoice> {
        let message = proto::InvoiceIdRequest {
            invoice_id: invoice_id.to_string(),
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.issue_invoice(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        invoice_from_proto(response.into_inner()).map_err(|error| self.malformed(error))
    }

    async fn void_invoice(
        &self,
        ctx: &CallerContext,
        invoice_id: Uuid,
        reason: String,
    ) -> WardResult<Invoice> {
        let message = proto::VoidInvoiceRequest {
            invoice_id: invoice_id.to_string(),
            reason,
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.void_invoice(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        invoice_from_proto(response.into_inner()).map_err(|error| self.malformed(error))
    }

    async fn record_payment(
        &self,
        ctx: &CallerContext,
        payment: NewPayment,
        key: IdempotencyKey,
    ) -> WardResult<PaymentReceipt> {
        // Safe to resend after a connect failure: the key makes the server record it once.
        let message = new_payment_to_proto(payment, &key);
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.record_payment(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        receipt_from_proto(response.into_inner()).map_err(|error| self.malformed(error))
    }

    async fn get_payment(&self, ctx: &CallerContext, payment_id: Uuid) -> WardResult<Payment> {
        let message = proto::PaymentIdRequest {
            payment_id: payment_id.to_string(),
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.get_payment(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        payment_from_proto(response.into_inner()).map_err(|error| self.malformed(error))
    }

    async fn refund_payment(
        &self,
        ctx: &CallerContext,
        payment_id: Uuid,
        amount: i64,
        key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Refund> {
        let message = proto::RefundPaymentRequest {
            payment_id: payment_id.to_string(),
            amount,
            idempotency_key: key_opt.map(|key| key.as_ref().to_string()),
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.refund_payment(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        refund_from_proto(response.into_inner()).map_err(|error| self.malformed(error))
    }

    async fn post_adjustment(
        &self,
        ctx: &CallerContext,
        adjustment: NewAdjustment,
    ) -> WardResult<LedgerEntry> {
        let message = new_adjustment_to_proto(adjustment);
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.post_adjustment(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        ledger_entry_from_proto(response.into_inner()).map_err(|error| self.malformed(error))
    }

    async fn statement(
        &self,
        ctx: &CallerContext,
        patient_id: Uuid,
        from_opt: Option<NaiveDate>,
        to_opt: Option<NaiveDate>,
    ) -> WardResult<Statement> {
        let message = proto::GetStatementRequest {
            patient_id: patient_id.to_string(),
            from: from_opt.map(format_date),
            to: to_opt.map(format_date),
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.get_statement(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        statement_from_proto(response.into_inner()).map_err(|error| self.malformed(error))
    }

    async fn check_ready(&self) -> WardResult<()> {
        check_serving(self.channel.clone(), BILLING_SERVICE_NAME, &self.peer).await
    }
}
