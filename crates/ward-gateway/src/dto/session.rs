//! Bodies of the session routes: refresh, password change and token narrowing.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use ward_bus::auth::{AccessToken, PasswordChange};
use ward_bus::token::Narrowing;
use ward_core::id::parse_id;
use ward_core::{FieldError, WardResult};

use super::fields::{
    at_most_bytes, at_most_chars, bool_field, field_error, integer_field, invalid, required,
    text_field, unknown_fields,
};

/// The longest refresh token read; real ones are far shorter.
pub(crate) const REFRESH_TOKEN_MAX_CHARS: usize = 512;

/// The most bytes a password field may carry, so a hostile body cannot make hashing expensive.
pub(crate) const PASSWORD_MAX_BYTES: usize = 1024;

/// The longest lifetime a narrowed token may be given, in seconds (a day).
pub(crate) const NARROW_MAX_SECS: i64 = 86_400;

// No `Debug`: it holds a bearer secret.
/// A refresh token to spend.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RefreshRequest)]
pub(crate) struct RefreshBody {
    /// The `refreshToken` of the last login or refresh; single use.
    #[schema(value_type = String, min_length = 1, max_length = 512, pattern = r"\S")]
    refresh_token: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl RefreshBody {
    pub(crate) fn into_refresh_token(self) -> WardResult<String> {
        let mut errors = Vec::new();
        let text_opt = text_field(self.refresh_token, "refreshToken", &mut errors);
        let present_opt = required(text_opt, "refreshToken", &mut errors);
        let token_opt = at_most_chars(
            present_opt,
            "refreshToken",
            REFRESH_TOKEN_MAX_CHARS,
            &mut errors,
        );
        unknown_fields(&self.unknown, &mut errors);
        match token_opt {
            Some(token) if errors.is_empty() => Ok(token),
            _ => Err(invalid(errors)),
        }
    }
}

// No `Debug`: it holds passwords.
/// The account holder's current password and the new one.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PasswordChangeRequest)]
pub(crate) struct PasswordBody {
    /// The password the account has now. At most 1024 bytes of UTF-8 (so 256 characters
    /// always fit).
    #[schema(value_type = String, format = Password, max_length = 256, pattern = r"\S")]
    current_password: Option<Value>,
    /// The auth module's policy applies: 12 to 128 characters, not a common password.
    #[schema(
        value_type = String,
        format = Password,
        min_length = 12,
        max_length = 128,
        pattern = r"\S"
    )]
    new_password: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl PasswordBody {
    pub(crate) fn into_password_change(self) -> WardResult<PasswordChange> {
        let mut errors = Vec::new();
        let current_opt = read_password(self.current_password, "currentPassword", &mut errors);
        let new_opt = read_password(self.new_password, "newPassword", &mut errors);
        unknown_fields(&self.unknown, &mut errors);
        match (current_opt, new_opt) {
            (Some(current_password), Some(new_password)) if errors.is_empty() => {
                Ok(PasswordChange {
                    current_password,
                    new_password,
                })
            }
            _ => Err(invalid(errors)),
        }
    }
}

/// A required password of at most [`PASSWORD_MAX_BYTES`]; the policy is the auth module's.
pub(super) fn read_password(
    value_opt: Option<Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let text_opt = text_field(value_opt, field, errors);
    let present_opt = required(text_opt, field, errors);
    at_most_bytes(present_opt, field, PASSWORD_MAX_BYTES, errors)
}

/// What to take away from the caller's token: at least one of `readOnly: true`, `patientId` or
/// `expiresInSeconds`; `null` is the same as absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = NarrowRequest)]
pub(crate) struct NarrowBody {
    /// `true`: only read rights remain.
    #[schema(value_type = Option<bool>)]
    read_only: Option<Value>,
    /// Only accesses to exactly this patient remain (searches and figures are refused).
    #[schema(value_type = Option<uuid::Uuid>)]
    patient_id: Option<Value>,
    /// The narrowed token expires this many seconds from now (or with the original, if that is
    /// sooner); 1 to 86400.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 86400)]
    expires_in_seconds: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl NarrowBody {
    /// Reads the narrowing; `expiresInSeconds` counts from `now`.
    pub(crate) fn into_narrowing(self, now: DateTime<Utc>) -> WardResult<Narrowing> {
        let mut errors = Vec::new();
        let read_only_opt = bool_field(self.read_only, "readOnly", &mut errors);
        let patient_text_opt = text_field(self.patient_id, "patientId", &mut errors);
        let mut patient_id_opt = None;
        if let Some(patient_text) = patient_text_opt {
            match parse_id(&patient_text, "patientId") {
                Ok(patient_id) => patient_id_opt = Some(patient_id),
                Err(error) => errors.extend(error.field_errors().iter().cloned()),
            }
        }
        let expires_in_secs_opt = integer_field(
            self.expires_in_seconds,
            "expiresInSeconds",
            1..=NARROW_MAX_SECS,
            &mut errors,
        );
        let mut expires_at_opt = None;
        if let Some(expires_in_secs) = expires_in_secs_opt {
            // In range by now, so only a clock at the end of time could overflow.
            match now.checked_add_signed(Duration::seconds(expires_in_secs)) {
                Some(expires_at) => expires_at_opt = Some(expires_at),
                None => errors.push(field_error(
                    "expiresInSeconds",
                    "expiresInSeconds is too far in the future",
                )),
            }
        }
        unknown_fields(&self.unknown, &mut errors);
        let narrowing = Narrowing {
            read_only: read_only_opt.unwrap_or(false),
            patient_id_opt,
            expires_at_opt,
        };
        let narrows_nothing = narrowing == Narrowing::default();
        if narrows_nothing && errors.is_empty() {
            // The same field and message as the token verifier's own refusal.
            errors.push(field_error(
                "narrowing",
                "name at least one of readOnly, patientId or expiresInSeconds",
            ));
        }
        if errors.is_empty() {
            Ok(narrowing)
        } else {
            Err(invalid(errors))
        }
    }
}

/// An access token without a refresh token (a narrowed one cannot be renewed).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AccessToken)]
pub(crate) struct AccessTokenResponse {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    /// When the token stops being accepted (RFC 3339).
    expires_at: DateTime<Utc>,
}

// Hand-written so that the token never reaches a log line.
impl std::fmt::Debug for AccessTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokenResponse")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl From<AccessToken> for AccessTokenResponse {
    fn from(access_token: AccessToken) -> Self {
        Self {
            token: access_token.token,
            expires_at: access_token.expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn fields(result: WardResult<impl Sized>) -> Vec<(String, String)> {
        let Err(error) = result else {
            panic!("accepted");
        };
        error
            .field_errors()
            .iter()
            .map(|error| (error.field.clone(), error.message.clone()))
            .collect()
    }

    fn narrow(value: Value) -> WardResult<Narrowing> {
        let body: NarrowBody = serde_json::from_value(value).unwrap();
        body.into_narrowing(DateTime::UNIX_EPOCH)
    }

    #[test]
    fn a_narrowing_reads_every_member() {
        let patient_id = Uuid::from_u128(42);
        let narrowing = narrow(json!({
            "readOnly": true,
            "patientId": patient_id.to_string(),
            "expiresInSeconds": 60.0
        }))
        .unwrap();
        assert_eq!(
            narrowing,
            Narrowing {
                read_only: true,
                patient_id_opt: Some(patient_id),
                expires_at_opt: Some(DateTime::UNIX_EPOCH + Duration::seconds(60)),
            }
        );
    }

    #[test]
    fn a_narrowing_that_takes_nothing_away_is_refused() {
        for body in [
            json!({}),
            json!({"readOnly": false}),
            json!({"patientId": null}),
        ] {
            assert_eq!(fields(narrow(body))[0].0, "narrowing");
        }
    }

    #[test]
    fn bad_narrowing_members_are_all_named() {
        let errors = fields(narrow(json!({
            "readOnly": "yes",
            "patientId": "42",
            "expiresInSeconds": 86401,
            "scope": "all"
        })));
        let names: Vec<&str> = errors.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(
            names,
            vec!["readOnly", "patientId", "expiresInSeconds", "scope"]
        );
        for seconds in [json!(0), json!(-5), json!(1.5), json!("60"), json!(1e300)] {
            let errors = fields(narrow(json!({"expiresInSeconds": seconds})));
            assert_eq!(errors[0].0, "expiresInSeconds", "{seconds}");
        }
    }

    #[test]
    fn a_refresh_token_is_required_and_bounded() {
        let read = |value: Value| {
            let body: RefreshBody = serde_json::from_value(value).unwrap();
            body.into_refresh_token()
        };
        assert_eq!(read(json!({"refreshToken": "r-1"})).unwrap(), "r-1");
        assert_eq!(
            fields(read(json!({"refreshToken": " "}))),
            vec![("refreshToken".into(), "refreshToken is required".into())]
        );
        let too_long = "r".repeat(REFRESH_TOKEN_MAX_CHARS + 1);
        assert_eq!(
            fields(read(json!({ "refreshToken": too_long }))),
            vec![(
                "refreshToken".into(),
                "refreshToken must be at most 512 characters".into()
            )]
        );
    }

    #[test]
    fn passwords_are_bounded_in_bytes() {
        let read = |value: Value| {
            let body: PasswordBody = serde_json::from_value(value).unwrap();
            body.into_password_change()
        };
        // 300 characters of two bytes each: 600 bytes, within the bound.
        let accented = "é".repeat(300);
        let change = read(json!({"currentPassword": accented, "newPassword": "x"})).unwrap();
        assert_eq!(change.new_password, "x");
        let huge = "é".repeat(513);
        assert_eq!(
            fields(read(json!({"currentPassword": huge}))),
            vec![
                (
                    "currentPassword".into(),
                    "currentPassword must be at most 1024 bytes".into()
                ),
                ("newPassword".into(), "newPassword is required".into()),
            ]
        );
    }
}
