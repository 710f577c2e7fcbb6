#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and integration tests (real
# metaserver processes on loopback), and a short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
. scripts/env.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)
echo "== dependency rules"
# No server links the client; the domain crate links no RPC, storage engine or runtime.
for server in raftfs-metaserver raftfs-blockserver; do
  if cargo tree -q -p "$server" -e normal,build,dev | grep -q 'raftfs-client '; then
    echo "error: $server depends on raftfs-client" >&2; exit 1
  fi
done
if cargo tree -q -p raftfs-core -e normal,build | grep -E -q '^.*(tonic|prost|rocksdb|tokio)[ -]'; then
  echo "error: raftfs-core depends on tonic, prost, rocksdb or tokio:" >&2
  cargo tree -q -p raftfs-core -e normal,build | grep -E '(tonic|prost|rocksdb|tokio)' >&2; exit 1
fi
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace -- --test-threads=2
echo "== the rolling upgrade's new version (next-format): its formats and its lints"
cargo clippy -p raftfs-metactl --all-targets --features next-format -- -D warnings
cargo test -p raftfs-core -p raftfs-metaserver --features raftfs-core/next-format,raftfs-metaserver/next-format --lib --test formats -- --test-threads=2
echo "== fuzz targets (5 s each; scripts/fuzz.sh for long runs)"
./scripts/fuzz.sh 5
