//! `GET /fhir/Patient/{id}/_history`: a patient's versions as a FHIR `history` Bundle.
//!
//! Entries come newest first (http.html#history), one per create, update, delete and restore.
//! Each names the interaction that made it (`request`) and what it answered (`response`: the
//! status, the version's `ETag` and when it was made); a delete entry has no resource. A restore
//! brought the resource back with its last content, which FHIR would do with a `PUT`, so it is
//! one. The whole history is answered at once, like the REST history; `_count` keeps only the
//! newest versions.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use uuid::Uuid;
use ward_bus::patients::{PAGE_MAX, PatientVersion};
use ward_core::id::parse_id;
use ward_core::{WardError, WardResult};

use super::FhirError;
use super::handlers::{base_url, fhir_reply, path_segment};
use super::patient::patient_resource;
use crate::ApiBackends;
use crate::caller::Caller;
use crate::etag::etag;
use crate::problem::ApiError;

const COUNT_MESSAGE: &str = "_count must be a number from 1 to 500";

/// `GET /fhir/Patient/{id}/_history[?_count=n]`.
#[tracing::instrument(name = "gateway.fhir.patient_history", skip_all)]
pub(crate) async fn patient_history(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller_result: Result<Caller, ApiError>,
) -> Result<HttpResponse, FhirError> {
    let caller = caller_result?;
    let id = parse_id(path_segment(&request, "id"), "id")?;
    let count_opt = parse_history_query(request.query_string())?;
    let mut versions = backends
        .patients
        .patient_history(caller.context(), id)
        .await?;
    if let Some(count) = count_opt {
        versions.truncate(count);
    }
    let base = base_url(&request);
    let mut self_url = format!("{base}/Patient/{id}/_history");
    if !request.query_string().is_empty() {
        self_url = format!("{self_url}?{}", request.query_string());
    }
    let bundle = history_bundle(&base, id, &versions, &self_url)?;
    Ok(fhir_reply(HttpResponse::Ok(), &bundle))
}

/// Reads the history's one parameter, `_count`; any other is a 400 naming it, as in search.
fn parse_history_query(query: &str) -> WardResult<Option<usize>> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|error| WardError::invalid(format!("invalid query string: {error}"), Vec::new()))?
        .into_inner();
    let mut count_opt = None;
    for (name, value) in pairs {
        if name != "_count" {
            let shown: String = name.chars().take(100).collect();
            return Err(WardError::invalid_field(
                &shown,
                format!("unknown history parameter {shown}; this server supports _count"),
            ));
        }
        if count_opt.is_some() {
            return Err(WardError::invalid_field(
                "_count",
                "_count may be given only once",
            ));
        }
        let max = PAGE_MAX as usize;
        match value.trim().parse::<usize>() {
            Ok(count) if (1..=max).contains(&count) => count_opt = Some(count),
            _ => return Err(WardError::invalid_field("_count", COUNT_MESSAGE)),
        }
    }
    Ok(count_opt)
}

/// Returns the `history` Bundle of patient `id`'s `versions` (newest first).
fn history_bundle(
    base: &str,
    id: Uuid,
    versions: &[PatientVersion],
    self_url: &str,
) -> WardResult<Value> {
    let mut entries = Vec::new();
    for version in versions {
        entries.push(history_entry(base, id, version)?);
    }
    Ok(json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": versions.len(),
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    }))
}

fn history_entry(base: &str, id: Uuid, version: &PatientVersion) -> WardResult<Value> {
    let (method, url, status) = match version.action.as_str() {
        "create" => ("POST", "Patient".to_string(), "201 Created"),
        // A restore, merge or unmerge replaced the resource with a new version, as an update.
        "update" | "restore" | "merge" | "merged" | "unmerge" | "unmerged" => {
            ("PUT", format!("Patient/{id}"), "200 OK")
        }
        "delete" => ("DELETE", format!("Patient/{id}"), "204 No Content"),
        other => {
            return Err(WardError::Internal(format!(
                "a history entry has an unknown action: {other}"
            )));
        }
    };
    let last_modified = version
        .at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut response = json!({
        "status": status,
        "etag": etag(version.version),
        "lastModified": last_modified,
    });
    let mut entry = json!({
        "fullUrl": format!("{base}/Patient/{id}"),
        "request": {"method": method, "url": url},
    });
    if method != "DELETE" {
        response["location"] = json!(format!("Patient/{id}/_history/{}", version.version));
        entry["resource"] = patient_resource(&version.patient, Some(version.at));
    }
    entry["response"] = response;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};
    use ward_bus::patients::Patient;

    use super::*;

    fn version(number: u32, action: &str) -> PatientVersion {
        let date = NaiveDate::from_ymd_opt(1990, 1, 2).unwrap();
        PatientVersion {
            version: number,
            at: Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap(),
            actor: "someone".into(),
            action: action.into(),
            patient: Patient {
                id: Uuid::nil(),
                name: "Ada Lovelace".into(),
                email: Some("ada@example.com".into()),
                address: Some("1 Road".into()),
                date_of_birth: date,
                registered_date: date,
                version: number,
                mrn: "MRN-00000001".into(),
                identifiers: Vec::new(),
                merged_into_opt: None,
                fhir_extras: ward_bus::patients::FhirExtras::default(),
            },
        }
    }

    #[test]
    fn each_action_is_the_interaction_that_made_it() {
        let versions = [
            version(4, "restore"),
            version(3, "delete"),
            version(2, "update"),
            version(1, "create"),
        ];
        let bundle = history_bundle("http://h/fhir", Uuid::nil(), &versions, "self").unwrap();
        let entries = bundle["entry"].as_array().unwrap();
        let methods: Vec<&str> = entries
            .iter()
            .map(|entry| entry["request"]["method"].as_str().unwrap())
            .collect();
        assert_eq!(methods, ["PUT", "DELETE", "PUT", "POST"]);
        assert_eq!(bundle["total"], 4);
        assert!(entries[1].get("resource").is_none());
        assert_eq!(entries[1]["response"]["etag"], r#"W/"3""#);
        assert_eq!(entries[3]["response"]["status"], "201 Created");
        assert_eq!(entries[3]["resource"]["meta"]["versionId"], "1");
        assert_eq!(
            entries[3]["response"]["lastModified"],
            "2024-05-06T07:08:09.000Z"
        );
        let merged = history_bundle("h", Uuid::nil(), &[version(2, "merged")], "self").unwrap();
        assert_eq!(merged["entry"][0]["request"]["method"], "PUT");
        let unknown = history_bundle("h", Uuid::nil(), &[version(1, "split")], "self");
        assert!(unknown.is_err());
    }

    #[test]
    fn only_count_is_understood() {
        assert_eq!(parse_history_query(""), Ok(None));
        assert_eq!(parse_history_query("_count=2"), Ok(Some(2)));
        for bad in [
            "_count=0",
            "_count=501",
            "_count=x",
            "_count=1&_count=2",
            "_since=2024",
        ] {
            assert!(parse_history_query(bad).is_err(), "{bad}");
        }
        let unknown = parse_history_query("_since=2024").unwrap_err();
        assert_eq!(unknown.field_errors()[0].field, "_since");
    }
}
