//! [`PatientsGrpcServer`]: serves any [`PatientsApi`] implementation as `ward.v1.PatientService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::grpc::{caller_from_request, parse_uuid, respond};
use ward_bus::patients::{
    IMPORT_BATCH_MAX, IdempotencyKey, ImportOutcome, NewPatient, PatientChanges,
};
use ward_bus::token::TokenVerifier;
use ward_core::{CallerContext, WardError, WardResult};
use ward_proto::v1 as proto;
use ward_proto::v1::patient_service_server::{PatientService, PatientServiceServer};

use super::bulk::{export_request_from_proto, import_outcomes_to_proto};
use super::{
    audit_page_to_proto, audit_query_from_proto, input_from_proto, page_request_from_proto,
    page_to_proto, patient_to_proto, patient_version_to_proto, patient_versions_to_proto,
    search_from_proto,
};

/// The gRPC face of a patients module: builds the caller from metadata, parses the request with
/// the domain parsers, calls the trait, and answers errors through the one table.
pub struct PatientsGrpcServer {
    service: Arc<dyn PatientsApi>,
    verifier: TokenVerifier,
}

impl PatientsGrpcServer {
    /// Returns an adapter over `service`; `verifier` reads callers' bearer tokens.
    pub fn new(service: Arc<dyn PatientsApi>, verifier: TokenVerifier) -> Self {
        Self { service, verifier }
    }

    /// Returns the tonic service to add to a server.
    pub fn into_service(self) -> PatientServiceServer<Self> {
        PatientServiceServer::new(self)
    }

    /// Parses each record; one that does not parse is `Failed` with its reasons, and the rest
    /// go to the module as one batch, as they would from any caller.
    async fn import(
        &self,
        ctx: &CallerContext,
        request: proto::ImportPatientsRequest,
    ) -> WardResult<Vec<ImportOutcome>> {
        if request.patients.len() > IMPORT_BATCH_MAX {
            return Err(WardError::invalid_field(
                "patients",
                format!("an import takes at most {IMPORT_BATCH_MAX} records per call"),
            ));
        }
        let mut outcomes = Vec::with_capacity(request.patients.len());
        let mut patients = Vec::new();
        // Where each parsed record's outcome goes.
        let mut positions = Vec::new();
        for input in request.patients {
            let raw_id = input.id.clone().unwrap_or_default();
            let id_result = parse_uuid(&raw_id, "id");
            let patient_result = NewPatient::parse(input_from_proto(input));
            match (id_result, patient_result) {
                (Ok(id), Ok(patient)) => {
                    positions.push(outcomes.len());
                    patients.push((id, patient));
                    // Replaced by the module's outcome below.
                    outcomes.push(ImportOutcome::AlreadyPresent);
                }
                (id_outcome, patient_outcome) => {
                    let mut reasons = Vec::new();
                    for error in [id_outcome.err(), patient_outcome.err()]
                        .into_iter()
                        .flatten()
                    {
                        reasons.push(error.to_string());
                    }
                    outcomes.push(ImportOutcome::Failed(reasons.join("; ")));
                }
            }
        }
        let module_outcomes = self.service.import_patients(ctx, patients).await?;
        for (position, outcome) in positions.into_iter().zip(module_outcomes) {
            outcomes[position] = outcome;
        }
        Ok(outcomes)
    }
}

#[tonic::async_trait]
impl PatientService for PatientsGrpcServer {
    async fn create_patient(
        &self,
        request: Request<proto::PatientInput>,
    ) -> Result<Response<proto::Patient>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        // `id` is ignored: the module assigns ids; ImportPatients is the call that carries them.
        let mut message = request.into_inner();
        let idempotency_key_result = match message.idempotency_key.take() {
            Some(raw) => IdempotencyKey::parse(&raw).map(Some),
            None => Ok(None),
        };
        let input = input_from_proto(message);
        let result = match (NewPatient::parse(input), idempotency_key_result) {
            (Ok(patient), Ok(idempotency_key_opt)) => {
                self.service
                    .create_patient(&ctx, patient, idempotency_key_opt)
                    .await
            }
            (Err(error), _) | (_, Err(error)) => Err(error),
        };
        respond(&ctx, "CreatePatient", result.map(patient_to_proto))
    }

    async fn get_patient(
        &self,
        request: Request<proto::PatientId>,
    ) -> Result<Response<proto::Patient>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match parse_uuid(&request.get_ref().id, "id") {
            Ok(id) => self.service.get_patient(&ctx, id).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "GetPatient", result.map(patient_to_proto))
    }

    async fn list_patients(
        &self,
        request: Request<proto::ListPatientsRequest>,
    ) -> Result<Response<proto::PatientPage>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match page_request_from_proto(request.into_inner()) {
            Ok(page) => self.service.list_patients(&ctx, page).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "ListPatients", result.map(page_to_proto))
    }

    async fn search_patients(
        &self,
        request: Request<proto::SearchPatientsRequest>,
    ) -> Result<Response<proto::PatientPage>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match search_from_proto(request.into_inner()) {
            Ok(search) => self.service.search_patients(&ctx, search).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "SearchPatients", result.map(page_to_proto))
    }

    async fn update_patient(
        &self,
        request: Request<proto::UpdatePatientRequest>,
    ) -> Result<Response<proto::Patient>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let message = request.into_inner();
        // A missing `patient` is an empty input: every required field is reported.
        let input = input_from_proto(message.patient.unwrap_or_default());
        let result = match (parse_uuid(&message.id, "id"), PatientChanges::parse(input)) {
            (Ok(id), Ok(changes)) => {
                self.service
                    .update_patient(&ctx, id, changes, message.expected_version)
                    .await
            }
            (Err(id_error), Ok(_)) => Err(id_error),
            (Ok(_), Err(input_error)) => Err(input_error),
            (Err(id_error), Err(input_error)) => {
                let mut errors = id_error.field_errors().to_vec();
                errors.extend_from_slice(input_error.field_errors());
                Err(WardError::invalid(
                    format!("{id_error}; {input_error}"),
                    errors,
                ))
            }
        };
        respond(&ctx, "UpdatePatient", result.map(patient_to_proto))
    }

    async fn delete_patient(
        &self,
        request: Request<proto::DeletePatientRequest>,
    ) -> Result<Response<proto::DeletePatientResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let expected_version_opt = request.get_ref().expected_version;
        let result = match parse_uuid(&request.get_ref().id, "id") {
            Ok(id) => {
                self.service
                    .delete_patient(&ctx, id, expected_version_opt)
                    .await
            }
            Err(error) => Err(error),
        };
        respond(
            &ctx,
            "DeletePatient",
            result.map(|()| proto::DeletePatientResponse {}),
        )
    }

    async fn restore_patient(
        &self,
        request: Request<proto::RestorePatientRequest>,
    ) -> Result<Response<proto::Patient>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let expected_version_opt = request.get_ref().expected_version;
        let result = match parse_uuid(&request.get_ref().id, "id") {
            Ok(id) => {
                self.service
                    .restore_patient(&ctx, id, expected_version_opt)
                    .await
            }
            Err(error) => Err(error),
        };
        respond(&ctx, "RestorePatient", result.map(patient_to_proto))
    }

    async fn purge_patient(
        &self,
        request: Request<proto::PatientId>,
    ) -> Result<Response<proto::PurgePatientResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match parse_uuid(&request.get_ref().id, "id") {
            Ok(id) => self.service.purge_patient(&ctx, id).await,
            Err(error) => Err(error),
        };
        respond(
            &ctx,
            "PurgePatient",
            result.map(|()| proto::PurgePatientResponse {}),
        )
    }

    async fn merge_patients(
        &self,
        request: Request<proto::MergePatientsRequest>,
    ) -> Result<Response<proto::Patient>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match merge_pair(request.get_ref()) {
            Ok((target, source)) => {
                let expected_opt = request.get_ref().expected_target_version;
                self.service
                    .merge_patients(&ctx, target, source, expected_opt)
                    .await
            }
            Err(error) => Err(error),
        };
        respond(&ctx, "MergePatients", result.map(patient_to_proto))
    }

    async fn unmerge_patients(
        &self,
        request: Request<proto::MergePatientsRequest>,
    ) -> Result<Response<proto::UnmergePatientsResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match merge_pair(request.get_ref()) {
            Ok((target, source)) => self.service.unmerge_patients(&ctx, target, source).await,
            Err(error) => Err(error),
        };
        let reply = result.map(|(target, source)| proto::UnmergePatientsResponse {
            target: Some(patient_to_proto(target)),
            source: Some(patient_to_proto(source)),
        });
        respond(&ctx, "UnmergePatients", reply)
    }

    async fn list_patient_versions(
        &self,
        request: Request<proto::PatientId>,
    ) -> Result<Response<proto::PatientVersionList>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match parse_uuid(&request.get_ref().id, "id") {
            Ok(id) => self.service.patient_history(&ctx, id).await,
            Err(error) => Err(error),
        };
        respond(
            &ctx,
            "ListPatientVersions",
            result.map(patient_versions_to_proto),
        )
    }

    async fn get_patient_version(
        &self,
        request: Request<proto::PatientVersionRequest>,
    ) -> Result<Response<proto::PatientVersion>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let version = request.get_ref().version;
        let result = match parse_uuid(&request.get_ref().id, "id") {
            Ok(id) => self.service.patient_version(&ctx, id, version).await,
            Err(error) => Err(error),
        };
        respond(
            &ctx,
            "GetPatientVersion",
            result.map(patient_version_to_proto),
        )
    }

    async fn import_patients(
        &self,
        request: Request<proto::ImportPatientsRequest>,
    ) -> Result<Response<proto::ImportPatientsResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = self.import(&ctx, request.into_inner()).await;
        respond(&ctx, "ImportPatients", result.map(import_outcomes_to_proto))
    }

    async fn export_patients(
        &self,
        request: Request<proto::ExportPatientsRequest>,
    ) -> Result<Response<proto::PatientPage>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match export_request_from_proto(request.into_inner()) {
            Ok((since_opt, page)) => self.service.export_patients(&ctx, since_opt, page).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "ExportPatients", result.map(page_to_proto))
    }

    async fn list_audit_events(
        &self,
        request: Request<proto::AuditQueryRequest>,
    ) -> Result<Response<proto::AuditPageResponse>, Status> {
        let ctx = caller_from_request(&request, &self.verifier);
        let result = match audit_query_from_proto(request.into_inner()) {
            Ok(query) => self.service.audit_events(&ctx, query).await,
            Err(error) => Err(error),
        };
        respond(&ctx, "ListAuditEvents", result.map(audit_page_to_proto))
    }
}

/// The (target, source) ids of a merge request; a malformed one is `InvalidArgument` naming it.
fn merge_pair(request: &proto::MergePatientsRequest) -> WardResult<(Uuid, Uuid)> {
    Ok((
        parse_uuid(&request.target_id, "id")?,
        parse_uuid(&request.source_id, "source")?,
    ))
}
