//! Compiles `plumb/v1/*.proto` in pure Rust (protox), so no system `protoc` is needed.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "plumb/v1/evidence.proto",
        "plumb/v1/agent.proto",
        "plumb/v1/query.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("plumb_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // No generated `connect` constructors: the rpc `AgentService.Connect` would clash with them,
    // and callers build their `Channel` explicitly anyway (timeouts, keep-alive).
    tonic_prost_build::configure()
        .build_transport(false)
        // Smaller per-stream buffers than tonic's 8 KiB: a controller holds one stream per
        // agent (see `codec.rs`).
        .codec_path("crate::codec::Codec")
        // Who changed a path: absent from most states (and from every one without
        // attribution), but a large message; boxed, an absent one costs a pointer, not the
        // size of a process's identity in every state of a snapshot.
        .boxed(".plumb.v1.PathState.who")
        .boxed(".plumb.v1.PackageState.who")
        .boxed(".plumb.v1.DriftItem.evidence")
        .compile_fds(fds)?;
    Ok(())
}
