//! The policy file: what to rotate, where to push it, and how; loaded and validated in full.
//!
//! [`load`] reads a TOML policy and returns a [`Policy`] or every problem in it at once, each
//! as `file:line:column: key: message`. Secrets appear only as [`SecretRef`]s.

mod checks;
mod duration;
mod error;
mod load;
mod model;
mod notify;
mod reader;
pub(crate) mod secret_ref;
mod sections;
mod services;
mod suggest;
mod tokens;
mod url;

pub use duration::{Lifetime, format_duration, parse_duration};
pub use error::{PolicyError, PolicyErrors};
pub use load::{load, parse};
pub use model::*;
pub use secret_ref::SecretRef;
