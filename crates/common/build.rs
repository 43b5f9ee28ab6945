//! Compiles `proto/` with protox (a pure-Rust protobuf compiler), so building Convene needs no
//! system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "../../proto";
    let files = [
        "../../proto/convene/internal/v1/meeting_controller.proto",
        "../../proto/convene/internal/v1/global_controller.proto",
    ];
    println!("cargo:rerun-if-changed={root}");
    let descriptors = protox::compile(files, [root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
