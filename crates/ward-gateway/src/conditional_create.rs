//! Creating a patient unless one already exists: the `If-None-Exist` flow of
//! `POST /api/patients` and `POST /fhir/Patient`, written once for both.
//!
//! The condition is searched first; no live match creates, one match is answered instead, and
//! several are refused (FHIR: "the server returns a 412 Precondition Failed error indicating
//! the client's criteria were not selective enough"). The search and the create are two calls,
//! so two clients racing with the same email can both see no match; the loser's create then
//! fails as a duplicate, and it searches again and answers the winner, as if it had come second.

use ward_bus::PatientsClient;
use ward_bus::patients::{IdempotencyKey, NewPatient, Patient, PatientSearch};
use ward_core::{CallerContext, WardError, WardResult};

/// The 412 when the condition matches more than one live patient.
pub(crate) const SEVERAL_MATCHES_MESSAGE: &str =
    "If-None-Exist matches several patients; make the condition more selective";

/// What a (conditional) create did.
#[derive(Debug)]
pub(crate) enum CreateOutcome {
    /// A new patient (or an `Idempotency-Key` retry's first one): 201.
    Created(Patient),
    /// The one live patient `If-None-Exist` matched; nothing was created: 200.
    Existing(Patient),
}

/// Registers `new_patient`, unless `condition_opt` matches a live patient. Several matches
/// are `PreconditionFailed` ([`SEVERAL_MATCHES_MESSAGE`]) and create nothing.
pub(crate) async fn create_patient_unless_exists(
    patients: &PatientsClient,
    ctx: &CallerContext,
    new_patient: NewPatient,
    idempotency_key_opt: Option<IdempotencyKey>,
    condition_opt: Option<PatientSearch>,
) -> WardResult<CreateOutcome> {
    let Some(condition) = condition_opt else {
        let patient = patients
            .create_patient(ctx, new_patient, idempotency_key_opt)
            .await?;
        return Ok(CreateOutcome::Created(patient));
    };
    if let Some(existing) = find_existing(patients, ctx, &condition).await? {
        return Ok(CreateOutcome::Existing(existing));
    }
    let create_result = patients
        .create_patient(ctx, new_patient, idempotency_key_opt)
        .await;
    match create_result {
        Ok(patient) => Ok(CreateOutcome::Created(patient)),
        // A concurrent create took the email between the search and this create; if the
        // condition now finds that winner, this request lost a race it was meant to survive.
        Err(WardError::AlreadyExists(detail)) => {
            match find_existing(patients, ctx, &condition).await? {
                Some(winner) => Ok(CreateOutcome::Existing(winner)),
                None => Err(WardError::AlreadyExists(detail)),
            }
        }
        Err(error) => Err(error),
    }
}

/// The one live patient `condition` matches, if any.
async fn find_existing(
    patients: &PatientsClient,
    ctx: &CallerContext,
    condition: &PatientSearch,
) -> WardResult<Option<Patient>> {
    let page = patients.search_patients(ctx, condition.clone()).await?;
    let mut items = page.items.into_iter();
    match (items.next(), items.next()) {
        (None, _) => Ok(None),
        (Some(patient), None) => Ok(Some(patient)),
        (Some(_), Some(_)) => Err(WardError::PreconditionFailed(
            SEVERAL_MATCHES_MESSAGE.to_string(),
        )),
    }
}
