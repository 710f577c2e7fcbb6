# Sourced by the scripts: one target directory outside the clone, shared by every clone on
# this machine (RocksDB's C++ takes ~15 minutes to compile; it is compiled once).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/raftfs/target}"
mkdir -p "$CARGO_TARGET_DIR"
