//! The analytics module over gRPC: [`AnalyticsGrpcClient`] implements
//! [`ward_bus::AnalyticsApi`] for an analytics role in another process, [`AnalyticsGrpcServer`]
//! serves any implementation. Domain ↔ proto conversions live here, once.

mod client;
mod server;

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use ward_bus::analytics::{
    AgingBuckets, CurrencyCode, DailyCount, Interval, Metric, Receivables, ReceivablesQuery,
    Summary, Timeseries, TimeseriesInput, TimeseriesPoint, TimeseriesQuery,
};
use ward_bus::grpc::parse_date;
use ward_bus::patients::format_date;
use ward_core::{WardError, WardResult};
use ward_proto::v1 as proto;

pub use self::client::AnalyticsGrpcClient;
pub use self::server::AnalyticsGrpcServer;

/// The full gRPC name of the service, as the health service reports it.
pub const ANALYTICS_SERVICE_NAME: &str = proto::analytics_service_server::SERVICE_NAME;

fn summary_to_proto(summary: Summary) -> proto::Summary {
    let mut registrations_by_day = Vec::with_capacity(summary.registrations_by_day.len());
    for daily in summary.registrations_by_day {
        registrations_by_day.push(proto::DailyCount {
            date: format_date(daily.date),
            count: daily.count,
        });
    }
    let mut payments_by_method = std::collections::HashMap::new();
    for (currency, amounts) in summary.payments_by_method {
        let amounts = proto::MethodAmounts {
            amounts: amounts.into_iter().collect(),
        };
        payments_by_method.insert(currency, amounts);
    }
    proto::Summary {
        patients_registered: summary.patients_registered,
        patients_deleted: summary.patients_deleted,
        patients_merged: summary.patients_merged,
        billing_accounts_opened: summary.billing_accounts_opened,
        active_patients: summary.active_patients,
        events_by_type: summary.events_by_type.into_iter().collect(),
        registrations_by_day,
        payments_by_method,
    }
}

/// Reads a summary from a reply; a bad date is `InvalidArgument` naming the field.
fn summary_from_proto(summary: proto::Summary) -> WardResult<Summary> {
    let mut registrations_by_day = Vec::with_capacity(summary.registrations_by_day.len());
    for daily in summary.registrations_by_day {
        registrations_by_day.push(DailyCount {
            date: parse_date(&daily.date, "registrationsByDay.date")?,
            count: daily.count,
        });
    }
    // The wire maps have no order; the domain keeps keys sorted.
    let events_by_type: BTreeMap<String, u64> = summary.events_by_type.into_iter().collect();
    let mut payments_by_method = BTreeMap::new();
    for (currency, amounts) in summary.payments_by_method {
        payments_by_method.insert(currency, amounts.amounts.into_iter().collect());
    }
    Ok(Summary {
        patients_registered: summary.patients_registered,
        patients_deleted: summary.patients_deleted,
        patients_merged: summary.patients_merged,
        billing_accounts_opened: summary.billing_accounts_opened,
        active_patients: summary.active_patients,
        events_by_type,
        registrations_by_day,
        payments_by_method,
    })
}

fn timeseries_query_to_proto(query: &TimeseriesQuery) -> proto::TimeseriesRequest {
    proto::TimeseriesRequest {
        metric: query.metric().as_str().to_string(),
        from: format_date(query.from()),
        to: format_date(query.to()),
        interval: query.interval().as_str().to_string(),
        currency: currency_to_proto(query.currency_opt()),
    }
}

/// Reads a request as the REST gateway reads a query string. Every field is sent, so the
/// defaults (which depend on the server's day) never apply to a well-formed request.
fn timeseries_query_from_proto(request: &proto::TimeseriesRequest) -> WardResult<TimeseriesQuery> {
    let input = TimeseriesInput {
        metric_opt: Some(&request.metric),
        from_opt: Some(&request.from),
        to_opt: Some(&request.to),
        interval_opt: Some(&request.interval),
        currency_opt: Some(&request.currency),
    };
    TimeseriesQuery::parse(input, Utc::now().date_naive())
}

fn timeseries_to_proto(timeseries: Timeseries) -> proto::Timeseries {
    let mut points = Vec::with_capacity(timeseries.points.len());
    for point in timeseries.points {
        points.push(proto::TimeseriesPoint {
            start: format_date(point.start),
            value: point.value,
        });
    }
    proto::Timeseries {
        metric: timeseries.metric.as_str().to_string(),
        interval: timeseries.interval.as_str().to_string(),
        currency: currency_to_proto(timeseries.currency_opt.as_ref()),
        points,
    }
}

fn timeseries_from_proto(timeseries: proto::Timeseries) -> WardResult<Timeseries> {
    let Some(metric) = Metric::parse(&timeseries.metric) else {
        return Err(WardError::invalid_field("metric", "unknown metric"));
    };
    let Some(interval) = Interval::parse(&timeseries.interval) else {
        return Err(WardError::invalid_field("interval", "unknown interval"));
    };
    let mut points = Vec::with_capacity(timeseries.points.len());
    for point in timeseries.points {
        points.push(TimeseriesPoint {
            start: parse_date(&point.start, "points.start")?,
            value: point.value,
        });
    }
    Ok(Timeseries {
        metric,
        interval,
        currency_opt: currency_from_proto(&timeseries.currency)?,
        points,
    })
}

fn receivables_query_to_proto(query: &ReceivablesQuery) -> proto::ReceivablesRequest {
    proto::ReceivablesRequest {
        currency: currency_to_proto(query.currency_opt.as_ref()),
        as_of: format_date(query.as_of),
    }
}

fn receivables_query_from_proto(
    request: &proto::ReceivablesRequest,
) -> WardResult<ReceivablesQuery> {
    Ok(ReceivablesQuery {
        currency_opt: currency_from_proto(&request.currency)?,
        as_of: parse_date(&request.as_of, "asOf")?,
    })
}

fn receivables_to_proto(receivables: Receivables) -> proto::Receivables {
    proto::Receivables {
        currency: currency_to_proto(receivables.currency_opt.as_ref()),
        as_of: format_date(receivables.as_of),
        days_0_30: receivables.buckets.days_0_30,
        days_31_60: receivables.buckets.days_31_60,
        days_61_90: receivables.buckets.days_61_90,
        over_90: receivables.buckets.over_90,
    }
}

fn receivables_from_proto(receivables: proto::Receivables) -> WardResult<Receivables> {
    let as_of: NaiveDate = parse_date(&receivables.as_of, "asOf")?;
    Ok(Receivables {
        currency_opt: currency_from_proto(&receivables.currency)?,
        as_of,
        buckets: AgingBuckets {
            days_0_30: receivables.days_0_30,
            days_31_60: receivables.days_31_60,
            days_61_90: receivables.days_61_90,
            over_90: receivables.over_90,
        },
    })
}

/// proto3 has no absent string: empty stands for "no currency".
fn currency_to_proto(currency_opt: Option<&CurrencyCode>) -> String {
    currency_opt
        .map(|currency| currency.as_str().to_string())
        .unwrap_or_default()
}

fn currency_from_proto(raw: &str) -> WardResult<Option<CurrencyCode>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    CurrencyCode::parse(raw, "currency").map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(raw: &str) -> NaiveDate {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_summary_round_trips() {
        let summary = Summary {
            patients_registered: 3,
            patients_deleted: 1,
            patients_merged: 2,
            billing_accounts_opened: 2,
            active_patients: 1,
            events_by_type: BTreeMap::from([
                ("PatientRegistered".to_string(), 3),
                ("BillingAccountOpened".to_string(), 2),
            ]),
            registrations_by_day: vec![DailyCount {
                date: date("2024-01-10"),
                count: 2,
            }],
            payments_by_method: BTreeMap::from([
                (
                    "EUR".to_string(),
                    BTreeMap::from([("card".to_string(), 1250), ("cash".to_string(), -5)]),
                ),
                (
                    "USD".to_string(),
                    BTreeMap::from([("cheque".to_string(), 9)]),
                ),
            ]),
        };
        assert_eq!(
            summary_from_proto(summary_to_proto(summary.clone())).unwrap(),
            summary
        );
    }

    #[test]
    fn timeseries_requests_and_replies_round_trip() {
        let today = date("2024-03-31");
        for (metric, currency_opt) in [
            ("registrations", None),
            ("invoiced", Some("EUR")),
            ("collected", None),
        ] {
            let query = TimeseriesQuery::parse(
                TimeseriesInput {
                    metric_opt: Some(metric),
                    from_opt: Some("2024-01-03"),
                    to_opt: Some("2024-02-29"),
                    interval_opt: Some("week"),
                    currency_opt,
                },
                today,
            )
            .unwrap();
            let sent = timeseries_query_to_proto(&query);
            assert_eq!(timeseries_query_from_proto(&sent).unwrap(), query);
        }
        let timeseries = Timeseries {
            metric: Metric::Collected,
            interval: Interval::Month,
            currency_opt: Some(CurrencyCode::parse("GBP", "currency").unwrap()),
            points: vec![
                TimeseriesPoint {
                    start: date("2024-01-01"),
                    value: -30,
                },
                TimeseriesPoint {
                    start: date("2024-02-01"),
                    value: 0,
                },
            ],
        };
        assert_eq!(
            timeseries_from_proto(timeseries_to_proto(timeseries.clone())).unwrap(),
            timeseries
        );
        let counts = Timeseries {
            metric: Metric::Registrations,
            interval: Interval::Day,
            currency_opt: None,
            points: Vec::new(),
        };
        assert_eq!(
            timeseries_from_proto(timeseries_to_proto(counts.clone())).unwrap(),
            counts
        );
    }

    #[test]
    fn receivables_requests_and_replies_round_trip() {
        for currency_opt in [None, Some(CurrencyCode::parse("eur", "currency").unwrap())] {
            let query = ReceivablesQuery {
                currency_opt: currency_opt.clone(),
                as_of: date("2024-05-01"),
            };
            assert_eq!(
                receivables_query_from_proto(&receivables_query_to_proto(&query)).unwrap(),
                query
            );
            let receivables = Receivables {
                currency_opt,
                as_of: date("2024-05-01"),
                buckets: AgingBuckets {
                    days_0_30: 1,
                    days_31_60: 2,
                    days_61_90: 3,
                    over_90: 4,
                },
            };
            assert_eq!(
                receivables_from_proto(receivables_to_proto(receivables.clone())).unwrap(),
                receivables
            );
        }
    }

    #[test]
    fn malformed_requests_are_invalid_arguments() {
        let request = proto::TimeseriesRequest {
            metric: "revenue".into(),
            from: "2024-01-01".into(),
            to: "2024-01-31".into(),
            interval: "day".into(),
            currency: String::new(),
        };
        let error = timeseries_query_from_proto(&request).unwrap_err();
        assert_eq!(error.error_code(), ward_core::ErrorCode::InvalidArgument);
        let request = proto::ReceivablesRequest {
            currency: "EURO".into(),
            as_of: "2024-01-01".into(),
        };
        assert!(receivables_query_from_proto(&request).is_err());
    }
}
