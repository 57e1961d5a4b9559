//! The billing module over gRPC: [`BillingGrpcClient`] implements [`ward_bus::BillingApi`] for a
//! billing role in another process, [`BillingGrpcServer`] serves any implementation.
//!
//! `CreateBillingAccount` keeps the reference platform's contract (`BillingRequest{patientId,name,
//! email}` → `BillingResponse{accountId,status}`); Ward adds `patientId` and `openedAt` to the
//! response so the client can return a whole [`BillingAccount`] in one round trip. Invoices,
//! payments, refunds, adjustments and statements convert in [`convert`].

mod client;
mod convert;
mod server;

use ward_bus::billing::{AccountStatus, BillingAccount};
use ward_bus::grpc::{format_timestamp, parse_timestamp, parse_uuid};
use ward_core::{WardError, WardResult};
use ward_proto::v1 as proto;

pub use self::client::BillingGrpcClient;
pub use self::server::BillingGrpcServer;

/// The full gRPC name of the service, as the health service reports it.
pub const BILLING_SERVICE_NAME: &str = proto::billing_service_server::SERVICE_NAME;

fn account_to_response(account: BillingAccount) -> proto::BillingResponse {
    proto::BillingResponse {
        account_id: account.id.to_string(),
        status: account.status.as_str().to_string(),
        patient_id: account.patient_id.to_string(),
        opened_at: format_timestamp(account.opened_at),
        currency: account
            .currency_opt
            .map(|currency| currency.as_str().to_string()),
        balance: account.balance,
    }
}

fn account_to_proto(account: BillingAccount) -> proto::BillingAccount {
    proto::BillingAccount {
        id: account.id.to_string(),
        patient_id: account.patient_id.to_string(),
        status: account.status.as_str().to_string(),
        opened_at: format_timestamp(account.opened_at),
        currency: account
            .currency_opt
            .map(|currency| currency.as_str().to_string()),
        balance: account.balance,
    }
}

/// The money fields of an account reply.
struct AccountMoney {
    currency_opt: Option<String>,
    balance: i64,
}

/// Reads an account from a reply's fields; a bad field is `InvalidArgument` naming it.
fn account_from_fields(
    id: &str,
    patient_id: &str,
    status: &str,
    opened_at: &str,
    money: AccountMoney,
) -> WardResult<BillingAccount> {
    let Some(status) = AccountStatus::parse(status) else {
        return Err(WardError::invalid_field(
            "status",
            "status is not a known account status",
        ));
    };
    Ok(BillingAccount {
        id: parse_uuid(id, "accountId")?,
        patient_id: parse_uuid(patient_id, "patientId")?,
        status,
        opened_at: parse_timestamp(opened_at, "openedAt")?,
        currency_opt: convert::optional_currency(money.currency_opt)?,
        balance: money.balance,
    })
}

fn account_from_response(response: &proto::BillingResponse) -> WardResult<BillingAccount> {
    account_from_fields(
        &response.account_id,
        &response.patient_id,
        &response.status,
        &response.opened_at,
        AccountMoney {
            currency_opt: response.currency.clone(),
            balance: response.balance,
        },
    )
}

fn account_from_proto(account: &proto::BillingAccount) -> WardResult<BillingAccount> {
    account_from_fields(
        &account.id,
        &account.patient_id,
        &account.status,
        &account.opened_at,
        AccountMoney {
            currency_opt: account.currency.clone(),
            balance: account.balance,
        },
    )
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn an_account_round_trips_both_ways() {
        let account = BillingAccount {
            id: Uuid::now_v7(),
            patient_id: Uuid::now_v7(),
            status: AccountStatus::Active,
            opened_at: Utc.timestamp_opt(1_700_000_000, 5_000).unwrap(),
            currency_opt: None,
            balance: 0,
        };
        let response = account_to_response(account.clone());
        assert_eq!(response.status, "ACTIVE");
        assert_eq!(account_from_response(&response).unwrap(), account);
        let message = account_to_proto(account.clone());
        assert_eq!(account_from_proto(&message).unwrap(), account);
        let billed = BillingAccount {
            currency_opt: Some(ward_bus::billing::Currency::parse("EUR", "currency").unwrap()),
            balance: -1_250,
            ..account
        };
        let response = account_to_response(billed.clone());
        assert_eq!(response.currency.as_deref(), Some("EUR"));
        assert_eq!(account_from_response(&response).unwrap(), billed);
        assert_eq!(
            account_from_proto(&account_to_proto(billed.clone())).unwrap(),
            billed
        );
    }

    #[test]
    fn an_unknown_status_is_refused() {
        let mut message = account_to_proto(BillingAccount {
            id: Uuid::now_v7(),
            patient_id: Uuid::now_v7(),
            status: AccountStatus::Active,
            opened_at: Utc::now(),
            currency_opt: None,
            balance: 0,
        });
        message.status = "FROZEN".into();
        let error = account_from_proto(&message).unwrap_err();
        assert_eq!(error.field_errors()[0].field, "status");
    }
}
