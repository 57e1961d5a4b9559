//! The set of module clients a process holds, local or remote; built once by the wiring.

use crate::token::TokenVerifier;
use crate::{AnalyticsClient, AuthClient, BillingClient, PatientsClient};

#[derive(Clone)]
pub struct Services {
    pub auth: AuthClient,
    pub patients: PatientsClient,
    pub billing: BillingClient,
    pub analytics: AnalyticsClient,
    /// Verifies bearer tokens offline with the auth module's public key.
    pub tokens: TokenVerifier,
}
