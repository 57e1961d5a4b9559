//! FHIR search on Patient: `GET /fhir/Patient?name=&birthdate=&identifier=&email=&_sort=&_count=
//! &_total=&_cursor=`, read strictly into Ward's [`PatientSearch`] and answered as a `searchset`
//! Bundle.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;
use ward_bus::patients::{
    BirthDateBound, DATE_FORMAT, DateComparator, PatientSearch, PatientSearchInput,
};
use ward_core::{FieldError, WardError, WardResult};

use super::FhirError;
use super::capability::SEARCH_PARAMETERS;
use super::handlers::{base_url, fhir_reply};
use super::patient::patient_resource;
use crate::ApiBackends;
use crate::caller::Caller;
use crate::identifier::identifier_token;
use crate::problem::ApiError;

/// Everything but the unreserved characters (RFC 3986) is escaped, so any value fits in a query.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `GET /fhir/Patient?name=&birthdate=&identifier=&email=&_sort=&_count=&_total=&_cursor=`: a
/// `searchset` Bundle of one page, whose `next` link repeats the search with the cursor of the
/// following page.
#[tracing::instrument(name = "gateway.fhir.search_patients", skip_all)]
pub(crate) async fn search_patients(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller_result: Result<Caller, ApiError>,
) -> Result<HttpResponse, FhirError> {
    let caller = caller_result?;
    let fhir_search = parse_search(request.query_string())?;
    let page = backends
        .patients
        .search_patients(caller.context(), fhir_search.search)
        .await?;
    let base = base_url(&request);
    let mut entries = Vec::new();
    for patient in &page.items {
        entries.push(json!({
            "fullUrl": format!("{base}/Patient/{}", patient.id),
            "resource": patient_resource(patient, None),
            "search": {"mode": "match"},
        }));
    }
    let mut self_url = format!("{base}/Patient");
    if !request.query_string().is_empty() {
        self_url = format!("{self_url}?{}", request.query_string());
    }
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let Some(cursor) = &page.next_cursor_opt {
        let mut query = String::new();
        for (name, value) in &fhir_search.repeated {
            query.push_str(&format!(
                "{}={}&",
                percent_encode(name),
                percent_encode(value)
            ));
        }
        query.push_str(&format!("_cursor={}", percent_encode(cursor)));
        links.push(json!({"relation": "next", "url": format!("{base}/Patient?{query}")}));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    if let Some(total) = page.total_opt {
        bundle["total"] = json!(total);
    }
    Ok(fhir_reply(HttpResponse::Ok(), &bundle))
}

/// The longest parameter name quoted back in an issue; it is the caller's text.
const ECHO_MAX_CHARS: usize = 100;

/// How many `birthdate` bounds a search may carry; two make a range, more add nothing.
const BIRTH_DATE_BOUNDS_MAX: usize = 4;

/// A FHIR search, read: what to ask the module, and what a `next` link repeats.
#[derive(Debug)]
struct FhirSearch {
    search: PatientSearch,
    /// Every parameter but `_cursor`, as sent and in order.
    repeated: Vec<(String, String)>,
}

/// Reads the search parameters into Ward's search, reporting every failing parameter at once by
/// its FHIR name. Each parameter but `birthdate` may be given once; a comma (FHIR's OR) is
/// refused, as are modifiers and any other parameter, since silently ignoring a filter would
/// answer too many patients.
fn parse_search(query: &str) -> WardResult<FhirSearch> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|error| WardError::invalid(format!("invalid query string: {error}"), Vec::new()))?
        .into_inner();
    let mut errors = Vec::new();
    let mut input = PatientSearchInput::default();
    let mut identifier_opt = None;
    let mut sort_opt = None;
    let mut count_opt = None;
    let mut total_opt = None;
    let mut repeated = Vec::new();
    let mut num_birth_dates = 0;
    for (name, value) in &pairs {
        if name != "_cursor" {
            repeated.push((name.clone(), value.clone()));
        }
        let is_listed = matches!(name.as_str(), "name" | "birthdate" | "identifier" | "email");
        if is_listed && value.contains(',') {
            errors.push(field_error(
                name,
                format!("{name} takes one value; several separated by commas are not supported"),
            ));
            continue;
        }
        if name == "birthdate" {
            num_birth_dates += 1;
            if num_birth_dates > BIRTH_DATE_BOUNDS_MAX {
                errors.push(field_error(
                    "birthdate",
                    format!("birthdate may be given at most {BIRTH_DATE_BOUNDS_MAX} times"),
                ));
                continue;
            }
            match birth_date_bound(value) {
                Ok(Some(bound)) => input.birth_dates.push(bound.as_param()),
                Ok(None) => {}
                Err(message) => errors.push(field_error("birthdate", message)),
            }
            continue;
        }
        let slot = match name.as_str() {
            "name" => &mut input.name_opt,
            "email" => &mut input.email_opt,
            "identifier" => &mut identifier_opt,
            "_sort" => &mut sort_opt,
            "_count" => &mut count_opt,
            "_total" => &mut total_opt,
            "_cursor" => &mut input.cursor_opt,
            _ => {
                errors.push(unknown_parameter(name));
                continue;
            }
        };
        if slot.replace(value.clone()).is_some() {
            errors.push(field_error(name, format!("{name} may be given only once")));
        }
    }
    if let Some(raw) = identifier_opt {
        match identifier_token(&raw) {
            Ok(token_opt) => input.identifier_opt = token_opt,
            Err(message) => errors.push(field_error("identifier", message)),
        }
    }
    if let Some(raw) = sort_opt {
        match ward_sort(&raw) {
            Ok(sort_opt) => input.sort_opt = sort_opt,
            Err(message) => errors.push(field_error("_sort", message)),
        }
    }
    if let Some(raw) = count_opt.filter(|raw| !raw.trim().is_empty()) {
        match raw.trim().parse::<i64>() {
            Ok(count) => input.limit_opt = Some(count),
            Err(_) => errors.push(field_error("_count", "_count must be a number")),
        }
    }
    if let Some(raw) = total_opt {
        match raw.trim() {
            "" | "none" => {}
            // An accurate count is also a fine estimate.
            "accurate" | "estimate" => input.total_opt = Some("accurate".to_string()),
            _ => errors.push(field_error(
                "_total",
                "_total must be none, estimate or accurate",
            )),
        }
    }
    let parsed = PatientSearch::parse(input).map_err(rename_search_errors);
    if !errors.is_empty() {
        if let Err(error) = &parsed {
            errors.extend_from_slice(error.field_errors());
        }
        return Err(WardError::invalid(messages(&errors), errors));
    }
    Ok(FhirSearch {
        search: parsed?,
        repeated,
    })
}

fn unknown_parameter(name: &str) -> FieldError {
    let shown: String = name.chars().take(ECHO_MAX_CHARS).collect();
    let supported = SEARCH_PARAMETERS.join(", ");
    if shown.contains(':') {
        return field_error(
            &shown,
            format!(
                "search parameter modifiers are not supported ({shown}); this server supports \
                 {supported}"
            ),
        );
    }
    field_error(
        &shown,
        format!("unknown search parameter {shown}; this server supports {supported}"),
    )
}

/// Reads a `birthdate` value: `yyyy-MM-dd` after an optional prefix. Ward stores whole days, so
/// `gt` and `lt` are exactly `ge` the next day and `le` the day before; the other FHIR prefixes
/// are refused by name. A blank value is absent.
fn birth_date_bound(raw: &str) -> Result<Option<BirthDateBound>, String> {
    const MALFORMED: &str = "birthdate must be a date in yyyy-MM-dd format, optionally prefixed \
                             with eq, ge, le, gt or lt";
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let has_prefix =
        trimmed.len() > 2 && trimmed.as_bytes()[..2].iter().all(u8::is_ascii_lowercase);
    let (prefix, date_text) = if has_prefix {
        trimmed.split_at(2)
    } else {
        ("eq", trimmed)
    };
    let comparator_opt = match prefix {
        "eq" => Some(DateComparator::Eq),
        "ge" | "gt" => Some(DateComparator::Ge),
        "le" | "lt" => Some(DateComparator::Le),
        "ne" | "sa" | "eb" | "ap" => {
            return Err(format!(
                "birthdate prefix {prefix} is not supported; use eq, ge, le, gt or lt"
            ));
        }
        _ => None,
    };
    // Exactly yyyy-MM-dd: chrono alone would also accept "2024-1-5".
    let is_iso_shape =
        date_text.len() == 10 && date_text.as_bytes()[4] == b'-' && date_text.as_bytes()[7] == b'-';
    let date_result = NaiveDate::parse_from_str(date_text, DATE_FORMAT);
    let (Some(comparator), Ok(date), true) = (comparator_opt, date_result, is_iso_shape) else {
        return Err(MALFORMED.to_string());
    };
    let shifted_opt = match prefix {
        "gt" => date.succ_opt(),
        "lt" => date.pred_opt(),
        _ => Some(date),
    };
    let Some(shifted) = shifted_opt else {
        return Err(MALFORMED.to_string());
    };
    Ok(Some(BirthDateBound {
        comparator,
        date: shifted,
    }))
}

/// Maps `_sort` to Ward's `sort`: one key, `name` or `birthdate`, `-` for descending. A blank
/// value is absent.
fn ward_sort(raw: &str) -> Result<Option<String>, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let (descending, key) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let field = match key {
        "name" => "name",
        "birthdate" => "birthDate",
        _ => {
            return Err(
                "_sort must be one of name, birthdate, -name, -birthdate (one key only)"
                    .to_string(),
            );
        }
    };
    if descending {
        return Ok(Some(format!("-{field}")));
    }
    Ok(Some(field.to_string()))
}

/// `PatientSearch` names its parameters as the REST API does; FHIR callers sent others.
fn rename_search_errors(error: WardError) -> WardError {
    const RENAMES: [(&str, &str); 5] = [
        ("limit", "_count"),
        ("cursor", "_cursor"),
        ("sort", "_sort"),
        ("total", "_total"),
        ("birthDate", "birthdate"),
    ];
    let mut errors = Vec::new();
    for field_error in error.field_errors() {
        let mut renamed = field_error.clone();
        for (ward_name, fhir_name) in RENAMES {
            if field_error.field == ward_name {
                renamed.field = fhir_name.to_string();
                renamed.message = field_error.message.replacen(ward_name, fhir_name, 1);
            }
        }
        errors.push(renamed);
    }
    if errors.is_empty() {
        return error;
    }
    WardError::invalid(messages(&errors), errors)
}

fn messages(errors: &[FieldError]) -> String {
    let messages: Vec<&str> = errors.iter().map(|error| error.message.as_str()).collect();
    messages.join("; ")
}

/// Percent-encodes everything but unreserved characters, so any cursor fits in a query.
fn percent_encode(raw: &str) -> String {
    utf8_percent_encode(raw, QUERY_VALUE).to_string()
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(error: &WardError) -> Vec<&str> {
        error
            .field_errors()
            .iter()
            .map(|error| error.field.as_str())
            .collect()
    }

    #[test]
    fn every_search_parameter_maps_to_wards_search() {
        let parsed = parse_search(
            "name=jo%20alv&birthdate=gt1980-01-01&birthdate=lt1990-01-01&birthdate=eq1985-05-05\
             &identifier=urn:ward:mrn%7CMRN-00000042&email=A@B.org&_sort=-birthdate&_count=2\
             &_total=accurate",
        )
        .unwrap();
        let search = parsed.search;
        assert_eq!(search.name_words, ["jo", "alv"]);
        let bounds: Vec<String> = search
            .birth_dates
            .iter()
            .map(BirthDateBound::as_param)
            .collect();
        assert_eq!(bounds, ["ge1980-01-02", "le1989-12-31", "eq1985-05-05"]);
        assert_eq!(
            search.identifier_opt.as_deref(),
            Some("urn:ward:mrn|MRN-00000042")
        );
        assert_eq!(search.email_opt.as_deref(), Some("a@b.org"));
        assert_eq!(search.sort.as_param(), "-birthDate");
        assert_eq!(search.limit, 2);
        assert!(search.with_total);
        assert_eq!(parsed.repeated.len(), 9);

        let plain = parse_search("identifier=MRN-7&_sort=name&birthdate=1990-01-01").unwrap();
        assert_eq!(plain.search.identifier_opt.as_deref(), Some("MRN-7"));
        assert_eq!(plain.search.sort.as_param(), "name");
        assert_eq!(plain.search.birth_dates[0].comparator, DateComparator::Eq);
        let empty = parse_search("").unwrap();
        assert_eq!(empty.search, PatientSearch::everyone(50));
    }

    #[test]
    fn every_bad_search_parameter_is_named() {
        let cases = [
            ("_count=0", "_count"),
            ("_count=501", "_count"),
            ("_count=two", "_count"),
            ("_count=1&_count=2", "_count"),
            ("_cursor=garbage", "_cursor"),
            ("birthdate=ne2000-01-01", "birthdate"),
            ("birthdate=2000-1-1", "birthdate"),
            ("birthdate=xx2000-01-01", "birthdate"),
            ("birthdate=gt2000-02-30", "birthdate"),
            ("identifier=urn:ward:mrn%7C", "identifier"),
            ("name=ada,bob", "name"),
            ("name=a&name=b", "name"),
            ("_sort=registeredDate", "_sort"),
            ("_sort=name,birthdate", "_sort"),
            ("_total=maybe", "_total"),
            ("name:exact=Ada", "name:exact"),
            ("gender=female", "gender"),
        ];
        for (query, field) in cases {
            let error = parse_search(query).unwrap_err();
            assert_eq!(fields(&error), [field], "{query}");
            let message = &error.field_errors()[0].message;
            assert!(message.contains(field), "{query}: {message}");
        }
        let many = parse_search("birthdate=2000-01-01&".repeat(5).as_str()).unwrap_err();
        assert_eq!(fields(&many), ["birthdate"]);
        let prefix = parse_search("birthdate=sa2000-01-01").unwrap_err();
        assert!(prefix.field_errors()[0].message.contains("prefix sa"));
        let all = parse_search("nmae=x&_count=0&_sort=age").unwrap_err();
        assert_eq!(fields(&all), ["nmae", "_sort", "_count"]);
    }

    #[test]
    fn cursors_are_encoded_for_a_query() {
        assert_eq!(percent_encode("ab-1_~."), "ab-1_~.");
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }
}
