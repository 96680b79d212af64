//! plumb's wire protocol, `plumb.v1`: generated prost messages and tonic services.
//!
//! Everything here is a wire type. The agent and controller convert to their own domain types at
//! their edges (`to_proto`/`from_proto`) and never pass these through their cores.

#![allow(unreachable_pub, clippy::all)]

pub mod codec;
pub mod names;
pub mod parts;

pub mod v1 {
    tonic::include_proto!("plumb.v1");

    /// The encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/plumb_v1_descriptor.bin"));
}

/// Bumped on protocol changes; sent in Hello. 2: a listed directory's entries are only its
/// undeclared ones, at most `MAX_LISTED_ENTRIES`, with their total. 3: plans may come in parts
/// (`Plan.more`).
pub const PROTOCOL_VERSION: u32 = 3;

/// The oldest protocol a controller still speaks: an agent of protocol 2 is sent its plans
/// whole. Controllers are upgraded first, then their agents.
pub const OLDEST_PROTOCOL_VERSION: u32 = 2;

/// The first protocol whose agents take a plan in parts.
pub const PLAN_PARTS_SINCE: u32 = 3;

/// The most paths, and the most packages, one plan may name: an agent refuses a larger plan
/// as malformed, and a controller refuses manifests that could make one.
pub const MAX_PLAN_ENTRIES: usize = 1_000_000;

/// About how many bytes of states an agent puts in one Snapshot part or Delta (a state larger
/// than this goes alone). Both ends keep per stream buffers as large as the largest message and
/// frame they have seen, for as long as the stream lasts; a controller holds one stream per
/// agent. Under 8 KiB, frames fit h2's initial read buffer.
pub const REPORT_BYTES: usize = 4 * 1024;

/// The most entry names a `PathState` carries; `entries_total` counts the rest. A directory
/// with 100,000 undeclared entries costs a message no more than one with 100.
pub const MAX_LISTED_ENTRIES: usize = 100;
