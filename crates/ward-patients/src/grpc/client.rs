//! [`PatientsGrpcClient`]: the patients module in another process, behind the same trait.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tonic::Status;
use tonic::transport::Channel;
use uuid::Uuid;
use ward_bus::PatientsApi;
use ward_bus::grpc::{
    call_with_reconnect, check_serving, error_from_peer_status, malformed_reply, outgoing_request,
    peer_description,
};
use ward_bus::patients::{
    AuditPage, AuditQuery, IdempotencyKey, ImportOutcome, NewPatient, PageRequest, Patient,
    PatientChanges, PatientPage, PatientSearch, PatientVersion,
};
use ward_core::{CallerContext, Role, WardError, WardResult};
use ward_proto::v1 as proto;
use ward_proto::v1::patient_service_client::PatientServiceClient;

use super::bulk::{export_request_to_proto, import_outcomes_from_proto};
use super::{
    PATIENTS_SERVICE_NAME, audit_page_from_proto, audit_query_to_proto, changes_to_proto,
    new_patient_to_proto, page_from_proto, page_request_to_proto, patient_from_proto,
    patient_version_from_proto, patient_versions_from_proto, search_to_proto,
};

/// Calls a remote patients role over a (balanced, lazily connected) gRPC channel.
///
/// The caller's token and request id travel in metadata; the remote module authorizes the call
/// itself. Errors come back with their kind intact (see [`ward_bus::grpc`]). A call whose
/// connection failed before it was sent is tried again (see [`call_with_reconnect`]), so a peer
/// restarted on its port answers the next call.
#[derive(Debug, Clone)]
pub struct PatientsGrpcClient {
    channel: Channel,
    /// Names the peer in transport errors: "patients peer at http://…".
    peer: String,
}

impl PatientsGrpcClient {
    /// Returns a client over `channel` (see [`ward_bus::grpc::connect_peer`]).
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            peer: peer_description(Role::Patients, &[]),
        }
    }

    /// Names `addresses` in the errors and readiness reasons this client gives.
    pub fn with_addresses(mut self, addresses: &[String]) -> Self {
        self.peer = peer_description(Role::Patients, addresses);
        self
    }

    fn client(&self) -> PatientServiceClient<Channel> {
        PatientServiceClient::new(self.channel.clone())
    }

    fn error(&self, status: Status) -> WardError {
        error_from_peer_status(&status, &self.peer)
    }

    fn patient_reply(&self, patient: proto::Patient) -> WardResult<Patient> {
        patient_from_proto(patient).map_err(|error| malformed_reply(&self.peer, error))
    }
}

#[async_trait]
impl PatientsApi for PatientsGrpcClient {
    async fn create_patient(
        &self,
        ctx: &CallerContext,
        patient: NewPatient,
        idempotency_key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Patient> {
        let message = proto::PatientInput {
            idempotency_key: idempotency_key_opt.map(|key| key.to_string()),
            ..new_patient_to_proto(patient, None)
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.create_patient(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        self.patient_reply(response.into_inner())
    }

    async fn get_patient(&self, ctx: &CallerContext, id: Uuid) -> WardResult<Patient> {
        let message = proto::PatientId { id: id.to_string() };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.get_patient(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        self.patient_reply(response.into_inner())
    }

    async fn list_patients(
        &self,
        ctx: &CallerContext,
        page: PageRequest,
    ) -> WardResult<PatientPage> {
        let message = page_request_to_proto(page);
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.list_patients(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        page_from_proto(response.into_inner()).map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn search_patients(
        &self,
        ctx: &CallerContext,
        search: PatientSearch,
    ) -> WardResult<PatientPage> {
        let message = search_to_proto(&search);
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.search_patients(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        page_from_proto(response.into_inner()).map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn update_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        changes: PatientChanges,
        expected_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        let message = proto::UpdatePatientRequest {
            id: id.to_string(),
            patient: Some(changes_to_proto(changes)),
            expected_version: expected_version_opt,
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.update_patient(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        self.patient_reply(response.into_inner())
    }

    async fn delete_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        expected_version_opt: Option<u32>,
    ) -> WardResult<()> {
        let message = proto::DeletePatientRequest {
            id: id.to_string(),
            expected_version: expected_version_opt,
        };
        call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.delete_patient(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        Ok(())
    }

    async fn restore_patient(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        expected_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        let message = proto::RestorePatientRequest {
            id: id.to_string(),
            expected_version: expected_version_opt,
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.restore_patient(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        self.patient_reply(response.into_inner())
    }

    async fn purge_patient(&self, ctx: &CallerContext, id: Uuid) -> WardResult<()> {
        let message = proto::PatientId { id: id.to_string() };
        call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.purge_patient(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        Ok(())
    }

    async fn merge_patients(
        &self,
        ctx: &CallerContext,
        target: Uuid,
        source: Uuid,
        expected_target_version_opt: Option<u32>,
    ) -> WardResult<Patient> {
        let message = proto::MergePatientsRequest {
            target_id: target.to_string(),
            source_id: source.to_string(),
            expected_target_version: expected_target_version_opt,
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.merge_patients(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        self.patient_reply(response.into_inner())
    }

    async fn unmerge_patients(
        &self,
        ctx: &CallerContext,
        target: Uuid,
        source: Uuid,
    ) -> WardResult<(Patient, Patient)> {
        let message = proto::MergePatientsRequest {
            target_id: target.to_string(),
            source_id: source.to_string(),
            expected_target_version: None,
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.unmerge_patients(request).await }
        })
        .await
        .map_err(|status| self.error(status))?
        .into_inner();
        let missing = |field: &str| {
            malformed_reply(
                &self.peer,
                WardError::invalid_field(field, format!("{field} is required")),
            )
        };
        let target = response.target.ok_or_else(|| missing("target"))?;
        let source = response.source.ok_or_else(|| missing("source"))?;
        Ok((self.patient_reply(target)?, self.patient_reply(source)?))
    }

    async fn patient_history(
        &self,
        ctx: &CallerContext,
        id: Uuid,
    ) -> WardResult<Vec<PatientVersion>> {
        let message = proto::PatientId { id: id.to_string() };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.list_patient_versions(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        patient_versions_from_proto(response.into_inner())
            .map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn patient_version(
        &self,
        ctx: &CallerContext,
        id: Uuid,
        version: u32,
    ) -> WardResult<PatientVersion> {
        let message = proto::PatientVersionRequest {
            id: id.to_string(),
            version,
        };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.get_patient_version(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        patient_version_from_proto(response.into_inner())
            .map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn import_patients(
        &self,
        ctx: &CallerContext,
        patients: Vec<(Uuid, NewPatient)>,
    ) -> WardResult<Vec<ImportOutcome>> {
        let num_sent = patients.len();
        let mut inputs = Vec::with_capacity(patients.len());
        for (id, patient) in patients {
            inputs.push(new_patient_to_proto(patient, Some(id)));
        }
        let message = proto::ImportPatientsRequest { patients: inputs };
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.import_patients(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        import_outcomes_from_proto(response.into_inner(), num_sent)
            .map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn export_patients(
        &self,
        ctx: &CallerContext,
        since_opt: Option<DateTime<Utc>>,
        page: PageRequest,
    ) -> WardResult<PatientPage> {
        let message = export_request_to_proto(since_opt, page);
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.export_patients(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        page_from_proto(response.into_inner()).map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn audit_events(&self, ctx: &CallerContext, query: AuditQuery) -> WardResult<AuditPage> {
        let message = audit_query_to_proto(query);
        let response = call_with_reconnect(|| {
            let mut client = self.client();
            let request = outgoing_request(message.clone(), ctx);
            async move { client.list_audit_events(request).await }
        })
        .await
        .map_err(|status| self.error(status))?;
        audit_page_from_proto(response.into_inner())
            .map_err(|error| malformed_reply(&self.peer, error))
    }

    async fn check_ready(&self) -> WardResult<()> {
        check_serving(self.channel.clone(), PATIENTS_SERVICE_NAME, &self.peer).await
    }
}
