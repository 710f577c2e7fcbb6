# Sourced by env.sh: RocksDB's C++ is compiled once per machine, not once per cargo profile.
#
# librocksdb-sys compiles RocksDB from source inside its build script, and cargo gives every
# profile (dev for tests, release for the demo and benchmarks, check for clippy) its own
# build-script run: on 2 cores each costs 12-15 minutes. Instead, the first script that needs
# RocksDB compiles it once, in the release profile with the features the workspace asks for,
# keeps the static library beside the target directory, and every later cargo command links
# that library (librocksdb-sys's own ROCKSDB_LIB_DIR / ROCKSDB_STATIC switches), whatever its
# profile. Tests therefore run on the same optimised RocksDB the release binaries use.

rocksdb_version="$(grep -A1 '^name = "librocksdb-sys"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
if [ -z "$rocksdb_version" ]; then
  echo "rocksdb.sh: no librocksdb-sys in Cargo.lock" >&2
  return 1
fi
rocksdb_dir="$CARGO_TARGET_DIR/rocksdb-$rocksdb_version"
if [ ! -f "$rocksdb_dir/librocksdb.a" ]; then
  echo "== RocksDB $rocksdb_version: compiling its C++ once (release), into $rocksdb_dir" >&2
  env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC cargo build --release -p librocksdb-sys >&2
  built="$(ls -t "$CARGO_TARGET_DIR"/release/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n1)"
  if [ -z "$built" ]; then
    echo "rocksdb.sh: the build left no librocksdb.a under $CARGO_TARGET_DIR/release/build" >&2
    return 1
  fi
  mkdir -p "$rocksdb_dir.tmp"
  cp "$built" "$rocksdb_dir.tmp/librocksdb.a"
  rm -rf "$rocksdb_dir"
  mv "$rocksdb_dir.tmp" "$rocksdb_dir"
else
  echo "== RocksDB $rocksdb_version: linking the library compiled before, $rocksdb_dir/librocksdb.a" >&2
fi
export ROCKSDB_LIB_DIR="$rocksdb_dir"
export ROCKSDB_STATIC=1
