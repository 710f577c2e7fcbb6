fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/raftfs.proto");
    tonic_prost_build::configure().compile_protos(&["proto/raftfs.proto"], &["proto"])?;
    Ok(())
}
