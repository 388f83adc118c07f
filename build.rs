//! Generates the gRPC code from `proto/` with a pure-Rust protobuf compiler
//! (protox), so no `protoc` has to be installed, and writes the encoded
//! descriptor set that server reflection serves. Server stubs only with the
//! `server` feature: the client SDK needs the client stubs alone. With it,
//! also the streaming service's server stubs as tonic generates them by
//! default (tonic's own prost codec), for the fleet benchmark's bare-tonic
//! baseline (`benches/fleet/baseline.rs`), so that baseline stays tonic's
//! defaults and not ours.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "crypto/v1/streaming.proto",
        "crypto/v1/market.proto",
        "crypto/v1/peer.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("crypto_descriptor.bin"), fds.encode_to_vec())?;
    let server = std::env::var_os("CARGO_FEATURE_SERVER").is_some();
    if server {
        let defaults = out.join("tonic_defaults");
        std::fs::create_dir_all(&defaults)?;
        tonic_prost_build::configure()
            .build_client(false)
            .out_dir(defaults)
            .compile_fds(protox::compile(["crypto/v1/streaming.proto"], ["proto"])?)?;
    }
    tonic_prost_build::configure()
        .build_server(server)
        // Small starting buffers per call (src/proto/codec.rs).
        .codec_path("crate::proto::codec::LeanCodec")
        .compile_fds(fds)?;
    Ok(())
}
