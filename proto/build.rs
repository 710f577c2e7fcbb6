fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/raftfs.proto");
    tonic_prost_build::configure()
        // A block key's secret must never reach a log line: its Debug is written by hand.
        .skip_debug(["raftfs.v1.BlockKey"])
        .compile_protos(&["proto/raftfs.proto"], &["proto"])?;
    Ok(())
}
