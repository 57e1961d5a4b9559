//! [`BillingGrpcServer`]: serves any [`BillingApi`] implementation as `ward.v1.BillingService`.
//!
//! Incoming fields are never trusted: they go through the domain parsers the gateway uses
//! ([`NewInvoice::parse`], [`NewPayment::parse`], [`NewAdjustment::parse`], [`IdempotencyKey::parse`]),
//! so a bad one is `InvalidArgument` naming it, as over HTTP.

use std::sync::Arc;

use chrono::NaiveDate;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use ward_bus::BillingApi;
use ward_bus::billing::{NewAdjustment, NewInvoice, NewPayment, OpenAccountRequest};
use ward_bus::grpc::{caller_from_request, parse_uuid, respond};
use ward_bus::patients::IdempotencyKey;
use ward_bus::token::TokenVerifier;
use ward_core::WardResult;
use ward_proto::v1 as proto;
use ward_proto::v1::billing_service_server::{BillingService, BillingServiceServer};

use super::convert::{
    adjustment_input_from_proto, invoice_input_from_proto, invoice_page_to_proto,
    invoice_query_from_proto, invoice_to_proto, ledger_entry_to_proto, optional_date,
    payment_input_from_proto, payment_to_proto, receipt_to_proto, refund_to_proto,
    statement_to_proto,
};
use super::{account_to_proto, account_to_response};

/// The gRPC face of a billing module: builds the caller from metadata, parses the request, calls
/// the trait, and answers errors through the one table.
pub struct BillingGrpcServer {
    service: Arc<dyn BillingApi>,
    verifier: TokenVerifier,
}

impl BillingGrpcServer {
    /// Returns an adapter over `service`; `verifier` reads callers' bearer tokens.
    pub fn new(service: Arc<dyn BillingApi>, verifier: TokenVerifier) -> Self {
        Self { service, verifier }
    }

    /// Returns the tonic service to add to a server.
    pub fn into_service(self) -> BillingServiceServer<Self> {
        BillingServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl BillingService for BillingGrpcServer {
    /// Opens the patient's account or returns the open one: idempotent per patient.
    async fn create_billing_account(
        &self,
        request: Request<proto::BillingRequest>,
    ) -> Result<Response<proto::BillingResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let message = request.into_inner();
        let result = match parse_uuid(&message.patient_id, "patientId") {
            Ok(patient_id) => {
                let open_request = OpenAccountRequest {
                    patient_id,
                    name: message.name,
                    email: message.email,
                };
                self.service
                    .create_billing_account(&ctx, open_request)
                    .await
            }
            Err(error) => Err(error),
        };
        respond(
            &ctx,
            "CreateBillingAccount",
            result.map(account_to_response),
        )
    }

    async fn get_account_by_patient(
        &self,
        request: Request<proto::GetAccountByPatientRequest>,
    ) -> Result<Response<proto::BillingAccount>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match parse_uuid(&request.get_ref().patient_id, "patientId") {
            Ok(patient_id) => self.service.get_account_by_patient(&ctx, patient_id).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "GetAccountByPatient", result.map(account_to_proto))
    }

    async fn create_invoice(
        &self,
        request: Request<proto::CreateInvoiceRequest>,
    ) -> Result<Response<proto::Invoice>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let input = invoice_input_from_proto(request.into_inner());
        let result = match NewInvoice::parse(input) {
            Ok(invoice) => self.service.create_invoice(&ctx, invoice).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "CreateInvoice", result.map(invoice_to_proto))
    }

    async fn get_invoice(
        &self,
        request: Request<proto::InvoiceIdRequest>,
    ) -> Result<Response<proto::Invoice>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match parse_uuid(&request.get_ref().invoice_id, "invoiceId") {
            Ok(invoice_id) => self.service.get_invoice(&ctx, invoice_id).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "GetInvoice", result.map(invoice_to_proto))
    }

    async fn list_invoices(
        &self,
        request: Request<proto::ListInvoicesRequest>,
    ) -> Result<Response<proto::InvoicePage>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match invoice_query_from_proto(request.into_inner()) {
            Ok(query) => self.service.list_invoices(&ctx, query).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "ListInvoices", result.map(invoice_page_to_proto))
    }

    async fn issue_invoice(
        &self,
        request: Request<proto::InvoiceIdRequest>,
    ) -> Result<Response<proto::Invoice>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match parse_uuid(&request.get_ref().invoice_id, "invoiceId") {
            Ok(invoice_id) => self.service.issue_invoice(&ctx, invoice_id).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "IssueInvoice", result.map(invoice_to_proto))
    }

    async fn void_invoice(
        &self,
        request: Request<proto::VoidInvoiceRequest>,
    ) -> Result<Response<proto::Invoice>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let message = request.into_inner();
        let result = match parse_uuid(&message.invoice_id, "invoiceId") {
            Ok(invoice_id) => {
                self.service
                    .void_invoice(&ctx, invoice_id, message.reason)
                    .await
            }
            Err(error) => Err(error),
        };
        respond(&ctx, "VoidInvoice", result.map(invoice_to_proto))
    }

    async fn record_payment(
        &self,
        request: Request<proto::RecordPaymentRequest>,
    ) -> Result<Response<proto::PaymentReceipt>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let (input, key_result) = payment_input_from_proto(request.into_inner());
        let result = match (key_result, NewPayment::parse(input)) {
            (Ok(key), Ok(payment)) => self.service.record_payment(&ctx, payment, key).await,
            (Err(error), _) | (_, Err(error)) => Err(error),
        };
        respond(&ctx, "RecordPayment", result.map(receipt_to_proto))
    }

    async fn get_payment(
        &self,
        request: Request<proto::PaymentIdRequest>,
    ) -> Result<Response<proto::Payment>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match parse_uuid(&request.get_ref().payment_id, "paymentId") {
            Ok(payment_id) => self.service.get_payment(&ctx, payment_id).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "GetPayment", result.map(payment_to_proto))
    }

    async fn refund_payment(
        &self,
        request: Request<proto::RefundPaymentRequest>,
    ) -> Result<Response<proto::Refund>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let message = request.into_inner();
        let result = match refund_target(&message) {
            Ok((payment_id, key_opt)) => {
                self.service
                    .refund_payment(&ctx, payment_id, message.amount, key_opt)
                    .await
            }
            Err(error) => Err(error),
        };
        respond(&ctx, "RefundPayment", result.map(refund_to_proto))
    }

    async fn post_adjustment(
        &self,
        request: Request<proto::PostAdjustmentRequest>,
    ) -> Result<Response<proto::LedgerEntry>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let message = request.into_inner();
        let parsed = match parse_uuid(&message.patient_id, "patientId") {
            Ok(patient_id) => {
                NewAdjustment::parse(patient_id, adjustment_input_from_proto(message))
            }
            Err(error) => Err(error),
        };
        let result = match parsed {
            Ok(adjustment) => self.service.post_adjustment(&ctx, adjustment).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "PostAdjustment", result.map(ledger_entry_to_proto))
    }

    async fn get_statement(
        &self,
        request: Request<proto::GetStatementRequest>,
    ) -> Result<Response<proto::Statement>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let message = request.into_inner();
        let result = match statement_period(message) {
            Ok((patient_id, from_opt, to_opt)) => {
                self.service
                    .statement(&ctx, patient_id, from_opt, to_opt)
                    .await
            }
            Err(error) => Err(error),
        };
        respond(&ctx, "GetStatement", result.map(statement_to_proto))
    }
}

/// The payment a refund names, and its key when it has one.
fn refund_target(
    message: &proto::RefundPaymentRequest,
) -> WardResult<(Uuid, Option<IdempotencyKey>)> {
    let payment_id = parse_uuid(&message.payment_id, "paymentId")?;
    let key_opt = match &message.idempotency_key {
        Some(raw) => Some(IdempotencyKey::parse(raw)?),
        None => None,
    };
    Ok((payment_id, key_opt))
}

/// The patient and the days `from..=to` a statement asks for.
fn statement_period(
    message: proto::GetStatementRequest,
) -> WardResult<(Uuid, Option<NaiveDate>, Option<NaiveDate>)> {
    let patient_id = parse_uuid(&message.patient_id, "patientId")?;
    let from_opt = optional_date(message.from, "from")?;
    let to_opt = optional_date(message.to, "to")?;
    Ok((patient_id, from_opt, to_opt))
}
