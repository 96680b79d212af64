//! plumb's controller: manifests, drift evaluation, the store, the gRPC API, and the operator CLI.

pub mod baseline;
pub mod certs;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dev;
pub mod digest;
pub mod drift;
pub mod evidence;
pub mod fleet;
pub mod html;
pub mod json;
pub mod key;
pub mod manifest;
pub mod model;
pub mod moment;
pub mod plan;
pub mod problem;
pub mod report;
pub mod role;
pub mod server;
pub mod store;
pub mod version;
pub mod webhook;
pub mod window;
