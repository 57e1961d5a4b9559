//! Bodies of the staff account routes (`/api/users`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;
use ward_bus::auth::{NewUser, UserChange, UserInfo};
use ward_core::{FieldError, UserRole, WardResult};

use super::UserRoleDto;
use super::fields::{
    at_most_chars, bool_field, field_error, invalid, required, text_field, unknown_fields,
};
use super::session::read_password;

/// The longest email address (RFC 5321's path limit, as for patients).
const EMAIL_MAX_CHARS: usize = 254;

/// A staff account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub(crate) struct UserResponse {
    id: Uuid,
    email: String,
    role: UserRoleDto,
    /// A disabled account cannot log in, and its tokens stop working.
    disabled: bool,
}

impl From<UserInfo> for UserResponse {
    fn from(user: UserInfo) -> Self {
        Self {
            id: user.id,
            email: user.email,
            role: user.role.into(),
            disabled: user.disabled,
        }
    }
}

/// Every staff account, ordered by email.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UserList)]
pub(crate) struct UserListResponse {
    items: Vec<UserResponse>,
}

impl From<Vec<UserInfo>> for UserListResponse {
    fn from(users: Vec<UserInfo>) -> Self {
        let mut items = Vec::with_capacity(users.len());
        for user in users {
            items.push(UserResponse::from(user));
        }
        Self { items }
    }
}

// No `Debug`: it holds a password.
/// A staff account to create.
#[derive(Deserialize, ToSchema)]
#[schema(as = NewUserRequest)]
pub(crate) struct NewUserBody {
    #[schema(
        value_type = String,
        format = Email,
        max_length = 254,
        pattern = r"\S",
        example = "clinician@example.com"
    )]
    email: Option<Value>,
    /// The auth module's policy applies: 12 to 128 characters, not a common password.
    #[schema(
        value_type = String,
        format = Password,
        min_length = 12,
        max_length = 128,
        pattern = r"\S"
    )]
    password: Option<Value>,
    #[schema(value_type = UserRoleDto)]
    role: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl NewUserBody {
    pub(crate) fn into_new_user(self) -> WardResult<NewUser> {
        let mut errors = Vec::new();
        let email_text_opt = text_field(self.email, "email", &mut errors);
        let email_present_opt = required(email_text_opt, "email", &mut errors);
        let email_opt = at_most_chars(email_present_opt, "email", EMAIL_MAX_CHARS, &mut errors);
        let password_opt = read_password(self.password, "password", &mut errors);
        let role_text_opt = text_field(self.role, "role", &mut errors);
        let role_present_opt = required(role_text_opt, "role", &mut errors);
        let role_opt = role_present_opt.and_then(|text| parse_role(&text, &mut errors));
        unknown_fields(&self.unknown, &mut errors);
        match (email_opt, password_opt, role_opt) {
            (Some(email), Some(password), Some(role)) if errors.is_empty() => Ok(NewUser {
                email,
                password,
                role,
            }),
            _ => Err(invalid(errors)),
        }
    }
}

/// A change to a staff account: at least one of `role` and `disabled`; `null` leaves a field as
/// it is. Sent as `application/json` or `application/merge-patch+json`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = UserPatchRequest)]
pub(crate) struct UserPatchBody {
    #[schema(value_type = Option<UserRoleDto>)]
    role: Option<Value>,
    /// `true` locks the account out and ends its sessions; `false` lets it log in again.
    #[schema(value_type = Option<bool>)]
    disabled: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl UserPatchBody {
    pub(crate) fn into_user_change(self) -> WardResult<UserChange> {
        let mut errors = Vec::new();
        let role_text_opt = text_field(self.role, "role", &mut errors);
        let role_opt = role_text_opt.and_then(|text| parse_role(&text, &mut errors));
        let disabled_opt = bool_field(self.disabled, "disabled", &mut errors);
        unknown_fields(&self.unknown, &mut errors);
        let change = UserChange {
            role: role_opt,
            disabled: disabled_opt,
        };
        if change == UserChange::default() && errors.is_empty() {
            // No member is wrong, the change as a whole is empty: named like `narrowing` on
            // `POST /auth/narrow`.
            errors.push(field_error(
                "change",
                "name at least one of role or disabled",
            ));
        }
        if errors.is_empty() {
            Ok(change)
        } else {
            Err(invalid(errors))
        }
    }
}

/// Reads a role exactly as the API writes it (`clinician`), like the enum in the schema.
fn parse_role(text: &str, errors: &mut Vec<FieldError>) -> Option<UserRole> {
    for role in UserRole::ALL {
        if role.as_str() == text {
            return Some(role);
        }
    }
    let valid = UserRole::ALL.map(UserRole::as_str).join(", ");
    errors.push(field_error("role", format!("role must be one of {valid}")));
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(error: ward_core::WardError) -> Vec<(String, String)> {
        error
            .field_errors()
            .iter()
            .map(|error| (error.field.clone(), error.message.clone()))
            .collect()
    }

    fn new_user(value: Value) -> WardResult<NewUser> {
        let body: NewUserBody = serde_json::from_value(value).unwrap();
        body.into_new_user()
    }

    fn patch(value: Value) -> WardResult<UserChange> {
        let body: UserPatchBody = serde_json::from_value(value).unwrap();
        body.into_user_change()
    }

    #[test]
    fn a_complete_body_becomes_a_new_user() {
        let user = new_user(json!({
            "email": "c@example.com",
            "password": "correct horse battery",
            "role": "clinician"
        }))
        .unwrap();
        assert_eq!(user.role, UserRole::Clinician);
        assert_eq!(user.email, "c@example.com");
    }

    #[test]
    fn every_failing_new_user_field_is_named_and_roles_are_listed() {
        let error = new_user(json!({"email": 5, "role": "Admin", "isRoot": true})).unwrap_err();
        assert_eq!(
            fields(error),
            vec![
                ("email".into(), "email must be a string".into()),
                ("password".into(), "password is required".into()),
                (
                    "role".into(),
                    "role must be one of admin, clinician, billing, analyst".into()
                ),
                ("isRoot".into(), "unknown field".into()),
            ]
        );
    }

    #[test]
    fn a_patch_reads_either_member_and_null_is_absent() {
        assert_eq!(
            patch(json!({"disabled": true, "role": null})).unwrap(),
            UserChange {
                role: None,
                disabled: Some(true)
            }
        );
        assert_eq!(
            patch(json!({"role": "billing"})).unwrap().role,
            Some(UserRole::Billing)
        );
        let error = patch(json!({"role": null})).unwrap_err();
        assert_eq!(
            fields(error),
            vec![(
                "change".into(),
                "name at least one of role or disabled".into()
            )]
        );
        let error = patch(json!({"disabled": "no"})).unwrap_err();
        assert_eq!(
            fields(error),
            vec![("disabled".into(), "disabled must be a boolean".into())]
        );
    }
}
