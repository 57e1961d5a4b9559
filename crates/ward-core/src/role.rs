//! Process roles (which modules run here) and user roles (what a person may do).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A module a `ward` process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Auth,
    Patients,
    Billing,
    Analytics,
    Gateway,
}

impl Role {
    /// In start order: a role starts after the roles it depends on.
    pub const ALL: [Role; 5] = [
        Role::Auth,
        Role::Patients,
        Role::Billing,
        Role::Analytics,
        Role::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Auth => "auth",
            Role::Patients => "patients",
            Role::Billing => "billing",
            Role::Analytics => "analytics",
            Role::Gateway => "gateway",
        }
    }

    /// The roles this one calls synchronously. Events go through the log, not through calls,
    /// so billing and analytics depend only on the log.
    pub fn calls(self) -> &'static [Role] {
        match self {
            Role::Gateway => &[Role::Auth, Role::Patients, Role::Billing, Role::Analytics],
            Role::Auth | Role::Patients | Role::Billing | Role::Analytics => &[],
        }
    }

    /// Whether this role owns a database.
    pub fn owns_database(self) -> bool {
        !matches!(self, Role::Gateway)
    }

    pub fn valid_names() -> String {
        Role::ALL.map(Role::as_str).join(", ")
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let wanted = raw.trim().to_ascii_lowercase();
        for role in Role::ALL {
            if role.as_str() == wanted {
                return Ok(role);
            }
        }
        Err(format!(
            "unknown role `{raw}`; valid roles are: {}",
            Role::valid_names()
        ))
    }
}

/// Parses a comma-separated role list; empty means all roles. Duplicates collapse.
pub fn parse_roles(items: &[String]) -> Result<Vec<Role>, String> {
    let mut roles = Vec::new();
    for item in items {
        for part in item.split(',') {
            if part.trim().is_empty() {
                continue;
            }
            let role: Role = part.parse()?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
    }
    if roles.is_empty() {
        return Ok(Role::ALL.to_vec());
    }
    roles.sort();
    Ok(roles)
}

/// What a staff account is for; maps to a fixed set of rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    Admin,
    Clinician,
    Billing,
    Analyst,
}

impl UserRole {
    pub const ALL: [UserRole; 4] = [
        UserRole::Admin,
        UserRole::Clinician,
        UserRole::Billing,
        UserRole::Analyst,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::Clinician => "clinician",
            UserRole::Billing => "billing",
            UserRole::Analyst => "analyst",
        }
    }

    /// The rights a role grants. Least privilege: an analyst sees figures, never a record.
    pub fn rights(self) -> &'static [Right] {
        match self {
            UserRole::Admin => &Right::ALL,
            UserRole::Clinician => &[
                Right::PatientsRead,
                Right::PatientsWrite,
                Right::BillingRead,
            ],
            UserRole::Billing => &[Right::PatientsRead, Right::BillingRead, Right::BillingWrite],
            UserRole::Analyst => &[Right::AnalyticsRead],
        }
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserRole {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let wanted = raw.trim().to_ascii_lowercase();
        for role in UserRole::ALL {
            if role.as_str() == wanted {
                return Ok(role);
            }
        }
        let valid = UserRole::ALL.map(UserRole::as_str).join(", ");
        Err(format!(
            "unknown user role `{raw}`; valid roles are: {valid}"
        ))
    }
}

/// One permission, checked by the module that owns the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Right {
    PatientsRead,
    PatientsWrite,
    BillingRead,
    BillingWrite,
    AnalyticsRead,
    UsersAdmin,
}

impl Right {
    pub const ALL: [Right; 6] = [
        Right::PatientsRead,
        Right::PatientsWrite,
        Right::BillingRead,
        Right::BillingWrite,
        Right::AnalyticsRead,
        Right::UsersAdmin,
    ];

    /// The name used in tokens and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::PatientsRead => "patients:read",
            Right::PatientsWrite => "patients:write",
            Right::BillingRead => "billing:read",
            Right::BillingWrite => "billing:write",
            Right::AnalyticsRead => "analytics:read",
            Right::UsersAdmin => "users:admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Right> {
        Right::ALL.into_iter().find(|right| right.as_str() == raw)
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_comma_lists_and_repeats() {
        let roles = parse_roles(&["gateway,patients".into(), "patients".into()]).unwrap();
        assert_eq!(roles, vec![Role::Patients, Role::Gateway]);
        assert_eq!(parse_roles(&[]).unwrap(), Role::ALL.to_vec());
    }

    #[test]
    fn unknown_role_lists_valid_names() {
        let error = parse_roles(&["gateway,pharmacy".into()]).unwrap_err();
        assert!(error.contains("pharmacy"));
        assert!(error.contains("auth, patients, billing, analytics, gateway"));
    }

    #[test]
    fn analyst_cannot_read_records() {
        assert!(!UserRole::Analyst.rights().contains(&Right::PatientsRead));
        assert!(UserRole::Admin.rights().contains(&Right::UsersAdmin));
    }

    #[test]
    fn rights_round_trip_by_name() {
        for right in Right::ALL {
            assert_eq!(Right::parse(right.as_str()), Some(right));
        }
    }
}
