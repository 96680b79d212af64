//! What the agent observes on its host: declared files, and the facts it introduces itself with.

pub mod expand;
pub mod facts;
pub mod files;
mod ids;
pub mod packages;

pub use ids::{IdCache, IdNames};
