//! Ward's shared vocabulary: ids, errors, roles and rights, the caller context, configuration.
//!
//! Every other crate depends on this one; it depends on no other Ward crate.

pub mod config;
pub mod context;
pub mod error;
pub mod id;
pub mod role;

pub use context::{AccessPolicy, CallerContext, Principal, RoleTable};
pub use error::{ErrorCode, FieldError, WardError, WardResult};
pub use role::{Right, Role, UserRole};
