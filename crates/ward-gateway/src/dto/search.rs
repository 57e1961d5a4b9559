//! The `GET /api/patients` query: search filters, sort and paging.
//!
//! The query string is read as raw (name, value) pairs rather than into a struct, because
//! `birthDate` may repeat (a range is two bounds) and every unknown parameter must be named in
//! the 400, as unknown body members are.

use utoipa::IntoParams;
use ward_bus::patients::{PatientSearch, PatientSearchInput};
use ward_core::{FieldError, WardResult};

use super::fields::{field_error, with_type_errors};

/// The longest unknown parameter name quoted back in a problem; the name is the caller's text.
const UNKNOWN_PARAMETER_ECHO_MAX_CHARS: usize = 100;

/// How many `birthDate` bounds a search may carry; two make a range, more add nothing.
const BIRTH_DATE_BOUNDS_MAX: usize = 4;

// Describes the query for the OpenAPI document; [`parse_patient_search`] reads the real one.
// Never built (the `#[allow]`).
/// `GET /api/patients` query. Every filter is optional; they combine with AND.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct PatientSearchParams {
    /// Words that must each be the start of some word of the name, ignoring case and accents
    /// (`jo alv` finds "José Álvarez").
    #[param(max_length = 100, pattern = r"\S", example = "jo")]
    name: Option<String>,
    /// The email address, matched exactly but ignoring case.
    #[param(max_length = 254, example = "john.doe@example.com")]
    email: Option<String>,
    /// A date of birth bound, `yyyy-MM-dd` prefixed with `eq` (the default), `ge` or `le`;
    /// repeat it for a range (`birthDate=ge1980-01-01&birthDate=le1989-12-31`).
    #[param(
        style = Form,
        explode,
        max_items = 4,
        value_type = Option<Vec<BirthDateBoundParam>>
    )]
    birth_date: Option<Vec<String>>,
    /// A medical record number, matched exactly (`MRN-00000042`).
    #[param(max_length = 64, pattern = r"\S", example = "MRN-00000042")]
    identifier: Option<String>,
    /// The order: `name`, `birthDate` or `registeredDate`, ascending, or descending with a
    /// leading `-`. Without it, by id (registration order).
    #[param(inline, value_type = Option<SortParam>)]
    sort: Option<String>,
    /// Page size, 1 to 500; 50 when absent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The `nextCursor` of the previous page, from a search with the same filters and sort;
    /// absent for the first page.
    cursor: Option<String>,
    /// `accurate` adds `total`, the number of all matches, to the page.
    #[param(inline, value_type = Option<TotalParam>)]
    total: Option<String>,
}

/// A `birthDate` bound.
#[derive(utoipa::ToSchema)]
#[schema(
    value_type = String,
    pattern = r"^(eq|ge|le)?[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    example = "ge1980-01-01"
)]
#[allow(dead_code)]
pub(crate) struct BirthDateBoundParam(String);

/// A sort order.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) enum SortParam {
    #[schema(rename = "name")]
    Name,
    #[schema(rename = "-name")]
    NameDescending,
    #[schema(rename = "birthDate")]
    BirthDate,
    #[schema(rename = "-birthDate")]
    BirthDateDescending,
    #[schema(rename = "registeredDate")]
    RegisteredDate,
    #[schema(rename = "-registeredDate")]
    RegisteredDateDescending,
}

/// Whether to count every match.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) enum TotalParam {
    #[schema(rename = "accurate")]
    Accurate,
    #[schema(rename = "none")]
    None,
}

/// Reads the query's (name, value) pairs into a search, reporting every failing parameter at
/// once: unknown names, repeats of a single-valued parameter, and whatever the domain parser
/// refuses.
pub(crate) fn parse_patient_search(pairs: Vec<(String, String)>) -> WardResult<PatientSearch> {
    let mut type_errors: Vec<FieldError> = Vec::new();
    let mut input = PatientSearchInput::default();
    let mut limit_text_opt: Option<String> = None;
    for (name, value) in pairs {
        let slot = match name.as_str() {
            "name" => &mut input.name_opt,
            "email" => &mut input.email_opt,
            "identifier" => &mut input.identifier_opt,
            "sort" => &mut input.sort_opt,
            "cursor" => &mut input.cursor_opt,
            "total" => &mut input.total_opt,
            "limit" => &mut limit_text_opt,
            "birthDate" => {
                if input.birth_dates.len() == BIRTH_DATE_BOUNDS_MAX {
                    type_errors.push(field_error(
                        "birthDate",
                        format!("birthDate may be given at most {BIRTH_DATE_BOUNDS_MAX} times"),
                    ));
                } else if !value.trim().is_empty() {
                    input.birth_dates.push(value);
                }
                continue;
            }
            _ => {
                let shown: String = name
                    .chars()
                    .take(UNKNOWN_PARAMETER_ECHO_MAX_CHARS)
                    .collect();
                type_errors.push(field_error(&shown, "unknown query parameter"));
                continue;
            }
        };
        if slot.is_some() {
            type_errors.push(field_error(&name, format!("{name} may be given only once")));
            continue;
        }
        *slot = Some(value);
    }
    if let Some(limit_text) = limit_text_opt.filter(|limit| !limit.trim().is_empty()) {
        match limit_text.trim().parse::<i64>() {
            Ok(limit) => input.limit_opt = Some(limit),
            Err(_) => type_errors.push(field_error("limit", "limit must be an integer")),
        }
    }
    with_type_errors(PatientSearch::parse(input), type_errors)
}

#[cfg(test)]
mod tests {
    use ward_bus::patients::{DateComparator, PatientSortField};
    use ward_core::WardError;

    use super::*;

    fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
        raw.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn fields(error: &WardError) -> Vec<&str> {
        error
            .field_errors()
            .iter()
            .map(|error| error.field.as_str())
            .collect()
    }

    #[test]
    fn a_full_search_parses() {
        let search = parse_patient_search(pairs(&[
            ("name", "jo  alv"),
            ("email", "A@B.org"),
            ("birthDate", "ge1980-01-01"),
            ("birthDate", "le1989-12-31"),
            ("sort", "-birthDate"),
            ("limit", "3"),
            ("total", "accurate"),
        ]))
        .unwrap();
        assert_eq!(search.name_words, vec!["jo", "alv"]);
        assert_eq!(search.email_opt.as_deref(), Some("a@b.org"));
        assert_eq!(search.birth_dates[1].comparator, DateComparator::Le);
        assert_eq!(search.sort.field, PatientSortField::BirthDate);
        assert!(search.sort.descending);
        assert_eq!(search.limit, 3);
        assert!(search.with_total);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let error = parse_patient_search(pairs(&[
            ("nmae", "jo"),
            ("limit", "x"),
            ("sort", "age"),
            ("birthDate", "1980-13-01"),
            ("total", "maybe"),
            ("name", "a"),
            ("name", "b"),
        ]))
        .unwrap_err();
        assert_eq!(
            fields(&error),
            vec!["birthDate", "sort", "total", "nmae", "name", "limit"]
        );
    }

    #[test]
    fn blank_values_are_absent() {
        let search =
            parse_patient_search(pairs(&[("name", ""), ("birthDate", " "), ("limit", "")]))
                .unwrap();
        assert!(search.name_words.is_empty());
        assert!(search.birth_dates.is_empty());
        assert_eq!(search.limit, 50);
    }
}
