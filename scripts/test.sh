#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and integration tests (real
# metaserver processes on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
. scripts/env.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
# clippy only type-checks and links nothing, but cargo gives a check build its own build-script
# run, which would compile RocksDB's C++ a second time (~12 minutes on 2 cores). Pointing
# librocksdb-sys at a library directory makes that run emit link flags (never used by a check)
# instead; `cargo test` below still compiles and links the real RocksDB.
ROCKSDB_LIB_DIR="$CARGO_TARGET_DIR/no-rocksdb-for-clippy" ROCKSDB_STATIC=1 \
  cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace -- --test-threads=2
