//! The analytics module over gRPC: [`AnalyticsGrpcClient`] implements
//! [`ward_bus::AnalyticsApi`] for an analytics role in another process, [`AnalyticsGrpcServer`]
//! serves any implementation. Domain ↔ proto conversions live here, once.

mod client;
mod server;

use std::collections::BTreeMap;

use ward_bus::analytics::{DailyCount, Summary};
use ward_bus::grpc::parse_date;
use ward_bus::patients::format_date;
use ward_core::WardResult;
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
    proto::Summary {
        patients_registered: summary.patients_registered,
        patients_deleted: summary.patients_deleted,
        patients_merged: summary.patients_merged,
        billing_accounts_opened: summary.billing_accounts_opened,
        events_by_type: summary.events_by_type.into_iter().collect(),
        registrations_by_day,
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
    // The wire map has no order; the domain keeps event types sorted.
    let events_by_type: BTreeMap<String, u64> = summary.events_by_type.into_iter().collect();
    Ok(Summary {
        patients_registered: summary.patients_registered,
        patients_deleted: summary.patients_deleted,
        patients_merged: summary.patients_merged,
        billing_accounts_opened: summary.billing_accounts_opened,
        events_by_type,
        registrations_by_day,
    })
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    #[test]
    fn a_summary_round_trips() {
        let summary = Summary {
            patients_registered: 3,
            patients_deleted: 1,
            patients_merged: 2,
            billing_accounts_opened: 2,
            events_by_type: BTreeMap::from([
                ("PatientRegistered".to_string(), 3),
                ("BillingAccountOpened".to_string(), 2),
            ]),
            registrations_by_day: vec![DailyCount {
                date: NaiveDate::from_ymd_opt(2024, 1, 10).unwrap(),
                count: 2,
            }],
        };
        assert_eq!(
            summary_from_proto(summary_to_proto(summary.clone())).unwrap(),
            summary
        );
    }
}
