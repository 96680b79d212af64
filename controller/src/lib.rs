//! plumb's controller: manifests, drift evaluation, the store, the gRPC API, and the operator CLI.

pub mod drift;
pub mod manifest;
pub mod plan;
