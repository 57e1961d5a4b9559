//! `--demo`: the reference platform's demo user and its 15 demo patients, loaded idempotently.
//! Their billing accounts follow from the `PatientRegistered` events, as for any patient.

use uuid::Uuid;
use ward_bus::Services;
use ward_bus::auth::NewUser;
use ward_bus::patients::{ImportOutcome, NewPatient, PatientInput, num_created};
use ward_core::{CallerContext, Role, UserRole, WardError, WardResult};

pub const DEMO_EMAIL: &str = "testuser@test.com";
const DEMO_PASSWORD: &str = "password123";
const DEMO_PATIENTS_CSV: &str = include_str!("demo/patients.csv");

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DemoRow {
    id: Uuid,
    name: String,
    email: String,
    address: String,
    date_of_birth: String,
    registered_date: String,
}

/// Loads what is missing of the demo data through the modules' own APIs.
pub async fn load(services: &Services, roles: &[Role]) -> WardResult<()> {
    let ctx = CallerContext::system("demo");
    if roles.contains(&Role::Auth) {
        let user = NewUser {
            email: DEMO_EMAIL.into(),
            password: DEMO_PASSWORD.into(),
            role: UserRole::Admin,
        };
        match services.auth.create_user(&ctx, user).await {
            Ok(_) => tracing::info!(email = DEMO_EMAIL, "created the demo user"),
            Err(WardError::AlreadyExists(_)) => {}
            Err(error) => return Err(error),
        }
    } else {
        tracing::warn!(
            "--demo: the auth role does not run here, so the demo user is not loaded by this process"
        );
    }
    if roles.contains(&Role::Patients) {
        let outcomes = services
            .patients
            .import_patients(&ctx, demo_patients()?)
            .await?;
        // A demo email taken by a real patient only skips that demo patient.
        for outcome in &outcomes {
            if let ImportOutcome::Failed(reason) = outcome {
                tracing::warn!(reason = %reason, "skipped a demo patient");
            }
        }
        tracing::info!(num_new = num_created(&outcomes), "demo patients loaded");
    } else {
        tracing::warn!(
            "--demo: the patients role does not run here, so demo patients are not loaded by this process"
        );
    }
    Ok(())
}

fn demo_patients() -> WardResult<Vec<(Uuid, NewPatient)>> {
    let mut patients = Vec::new();
    for row in csv::Reader::from_reader(DEMO_PATIENTS_CSV.as_bytes()).deserialize::<DemoRow>() {
        let row = row.map_err(|error| WardError::internal("reading the demo patients", error))?;
        let patient = NewPatient::parse(PatientInput {
            name: Some(row.name),
            email: Some(row.email),
            address: Some(row.address),
            date_of_birth: Some(row.date_of_birth),
            registered_date: Some(row.registered_date),
            ..PatientInput::default()
        })?;
        patients.push((row.id, patient));
    }
    Ok(patients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifteen_reference_patients_parse() {
        let patients = demo_patients().unwrap();
        assert_eq!(patients.len(), 15);
        let (id, john) = &patients[0];
        assert_eq!(id.to_string(), "123e4567-e89b-12d3-a456-426614174000");
        assert_eq!(john.name, "John Doe");
        assert_eq!(john.address.as_deref(), Some("123 Main St, Springfield"));
    }
}
