//! [`BillingGrpcServer`]: serves any [`BillingApi`] implementation as `ward.v1.BillingService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use ward_bus::BillingApi;
use ward_bus::billing::OpenAccountRequest;
use ward_bus::grpc::{caller_from_request, parse_uuid, respond};
use ward_bus::token::TokenVerifier;
use ward_proto::v1 as proto;
use ward_proto::v1::billing_service_server::{BillingService, BillingServiceServer};

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
}
