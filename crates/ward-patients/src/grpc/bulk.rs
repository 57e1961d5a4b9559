//! Proto conversions of the bulk calls: import outcomes and export page requests.

use chrono::{DateTime, Utc};
use ward_bus::grpc::{format_timestamp, parse_timestamp};
use ward_bus::patients::{ImportOutcome, PageRequest, cursor_after, num_created};
use ward_core::{WardError, WardResult};
use ward_proto::v1 as proto;

pub(super) fn import_outcomes_to_proto(
    outcomes: Vec<ImportOutcome>,
) -> proto::ImportPatientsResponse {
    let num_imported = num_created(&outcomes);
    let mut items = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let (status, error) = match outcome {
            ImportOutcome::Created => (proto::ImportStatus::Created, String::new()),
            ImportOutcome::AlreadyPresent => (proto::ImportStatus::AlreadyPresent, String::new()),
            ImportOutcome::Failed(message) => (proto::ImportStatus::Failed, message),
        };
        items.push(proto::ImportOutcome {
            status: status.into(),
            error,
        });
    }
    proto::ImportPatientsResponse {
        num_imported,
        outcomes: items,
    }
}

/// Reads the outcomes of a reply, which must hold one per record sent (`num_sent`).
pub(super) fn import_outcomes_from_proto(
    response: proto::ImportPatientsResponse,
    num_sent: usize,
) -> WardResult<Vec<ImportOutcome>> {
    if response.outcomes.len() != num_sent {
        return Err(WardError::invalid_field(
            "outcomes",
            format!(
                "outcomes must hold one entry per record ({num_sent}), not {}",
                response.outcomes.len()
            ),
        ));
    }
    let mut outcomes = Vec::with_capacity(num_sent);
    for item in response.outcomes {
        let outcome = match proto::ImportStatus::try_from(item.status) {
            Ok(proto::ImportStatus::Created) => ImportOutcome::Created,
            Ok(proto::ImportStatus::AlreadyPresent) => ImportOutcome::AlreadyPresent,
            Ok(proto::ImportStatus::Failed) => ImportOutcome::Failed(item.error),
            Ok(proto::ImportStatus::Unspecified) | Err(_) => {
                return Err(WardError::invalid_field(
                    "outcomes.status",
                    "outcomes.status must be created, already present or failed",
                ));
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

pub(super) fn export_request_to_proto(
    since_opt: Option<DateTime<Utc>>,
    page: PageRequest,
) -> proto::ExportPatientsRequest {
    proto::ExportPatientsRequest {
        since: since_opt.map(format_timestamp),
        limit: Some(page.limit),
        cursor: page.after_opt.map(cursor_after),
    }
}

/// Parses an export request with the domain parsers; every bad field is reported at once.
pub(super) fn export_request_from_proto(
    request: proto::ExportPatientsRequest,
) -> WardResult<(Option<DateTime<Utc>>, PageRequest)> {
    let since_result = match request.since.as_deref().filter(|raw| !raw.is_empty()) {
        Some(raw) => parse_timestamp(raw, "since").map(Some),
        None => Ok(None),
    };
    let page_result = PageRequest::parse(request.limit.map(i64::from), request.cursor.as_deref());
    match (since_result, page_result) {
        (Ok(since_opt), Ok(page)) => Ok((since_opt, page)),
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => Err(error),
        (Err(since_error), Err(page_error)) => {
            let mut errors = since_error.field_errors().to_vec();
            errors.extend_from_slice(page_error.field_errors());
            Err(WardError::invalid(
                format!("{since_error}; {page_error}"),
                errors,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn import_outcomes_round_trip_and_must_match_the_batch() {
        let outcomes = vec![
            ImportOutcome::Created,
            ImportOutcome::AlreadyPresent,
            ImportOutcome::Failed("Email address already exists".into()),
        ];
        let response = import_outcomes_to_proto(outcomes.clone());
        assert_eq!(response.num_imported, 1);
        assert_eq!(
            import_outcomes_from_proto(response.clone(), 3).unwrap(),
            outcomes
        );
        assert!(import_outcomes_from_proto(response.clone(), 2).is_err());
        let mut unspecified = response;
        unspecified.outcomes[0].status = 0;
        assert!(import_outcomes_from_proto(unspecified, 3).is_err());
    }

    #[test]
    fn an_export_request_round_trips_and_names_bad_fields() {
        let since = DateTime::parse_from_rfc3339("2024-06-01T10:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let page = PageRequest {
            limit: 500,
            after_opt: Some(Uuid::now_v7()),
        };
        let request = export_request_to_proto(Some(since), page.clone());
        assert_eq!(
            export_request_from_proto(request).unwrap(),
            (Some(since), page)
        );
        let bad = proto::ExportPatientsRequest {
            since: Some("yesterday".into()),
            limit: Some(0),
            cursor: None,
        };
        let error = export_request_from_proto(bad).unwrap_err();
        let fields: Vec<&str> = error
            .field_errors()
            .iter()
            .map(|error| error.field.as_str())
            .collect();
        assert_eq!(fields, ["since", "limit"]);
    }
}
