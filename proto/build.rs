//! Compiles the `.proto` files with protox (pure Rust, no system protoc) and
//! generates prost messages and tonic services from the descriptor set.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/metapb.proto",
        "proto/pdpb.proto",
        "proto/pdraftpb.proto",
        "proto/kvpb.proto",
        "proto/raftpb.proto",
        "proto/etcdserverpb.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        // Catalog records travel through PD's raft log, which is serde-encoded.
        .type_attribute(".metapb", "#[derive(serde::Serialize, serde::Deserialize)]")
        .type_attribute(".pdpb", "#[derive(serde::Serialize, serde::Deserialize)]")
        .compile_fds(descriptors)?;
    Ok(())
}
