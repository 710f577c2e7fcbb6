# Sourced by the scripts (from the repository's root): one target directory outside the clone,
# shared by every clone on this machine, and RocksDB's C++ compiled once for every profile
# (rocksdb.sh). Source it too before running cargo by hand, or cargo compiles RocksDB again.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/raftfs/target}"
mkdir -p "$CARGO_TARGET_DIR"
. "$(dirname "${BASH_SOURCE[0]}")/rocksdb.sh"
