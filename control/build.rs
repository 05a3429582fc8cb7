//! Generates the `ferry.v1` API code from `proto/` with a vendored `protoc`,
//! so a fresh machine needs nothing but the Rust toolchain.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let files = [
        "../proto/ferry/v1/common.proto",
        "../proto/ferry/v1/institutions.proto",
        "../proto/ferry/v1/zoom.proto",
        "../proto/ferry/v1/users.proto",
        "../proto/ferry/v1/jobs.proto",
        "../proto/ferry/v1/media.proto",
        "../proto/ferry/v1/sections.proto",
    ];
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("ferry_v1_descriptor.bin"))
        .compile_with_config(config, &files, &["../proto"])?;
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
