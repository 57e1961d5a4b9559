//! Compiles `proto/ward/v1/*.proto` with protox (pure Rust), so no system `protoc` is needed.

use std::path::PathBuf;

use prost::Message;

const PROTO_FILES: [&str; 5] = ["events", "auth", "patients", "billing", "analytics"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with env!(): several checkouts may share one target directory (CI
    // reuses it), and a path baked into the build script would compile another checkout's files.
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.join("../../proto");
    let files = PROTO_FILES.map(|name| root.join(format!("ward/v1/{name}.proto")));
    for name in PROTO_FILES {
        // Relative to this package, so cargo checks the files of the checkout being built.
        println!("cargo:rerun-if-changed=../../proto/ward/v1/{name}.proto");
    }
    let descriptors = protox::compile(&files, [&root])?;
    // Kept for gRPC reflection; compile_fds does not write it.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("ward_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
