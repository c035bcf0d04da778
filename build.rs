//! Generates the Rust message types and their protojson mapping from the proto
//! at build time: prost for the types, pbjson for serde. protoc comes from the
//! protoc-bin-vendored crate, so nothing is downloaded and no system protoc is
//! needed.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/proxies/v1/proxies.proto";
    println!("cargo:rerun-if-changed={proto}");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptors = out.join("proxies_descriptor.bin");

    let mut config = prost_build::Config::new();
    config
        .protoc_executable(protoc_bin_vendored::protoc_bin_path()?)
        .file_descriptor_set_path(&descriptors)
        // Our own Timestamp: pbjson-types writes "+00:00", protojson wants "Z".
        .extern_path(".google.protobuf.Timestamp", "crate::pb::Timestamp");
    let include = protoc_bin_vendored::include_path()?;
    config.compile_protos(&[proto], &[PathBuf::from("proto"), include])?;

    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptors)?)?
        .extern_path(".google.protobuf.Timestamp", "crate::pb::Timestamp")
        // protojson: unknown fields are ignored (a client built from a newer
        // proto must keep working).
        .ignore_unknown_fields()
        .build(&[".proxies.v1"])?;
    Ok(())
}
