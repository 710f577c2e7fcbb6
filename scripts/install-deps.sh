#!/usr/bin/env bash
# Installs what building raftfs needs on Debian/Ubuntu, beyond Rust itself:
#   clang + libclang-dev  bindgen, for RocksDB's bindings (librocksdb-sys)
#   protobuf-compiler     protoc, for the gRPC code generation (tonic-prost-build)
#   g++ / make            RocksDB's C++ (usually present with Rust)
#   libisal-dev           ISA-L, which the erasure codec's tests and benchmark compare against
#   cargo-fuzz            (from crates.io) the fuzz targets in fuzz/: scripts/fuzz.sh, and
#                         their short run at the end of scripts/test.sh
#   python3-venv          a virtual environment (~/.cache/raftfs/python) with the WebHDFS
#                         clients HDFS users have, from PyPI: HdfsCLI (`hdfs`) and fsspec,
#                         which metactl/tests/webhdfs.rs drives against the gateway
#   rsync, attr, fuse3    what metactl/tests/fuse.rs runs through the FUSE mount (rsync,
#                         setfattr/getfattr; fusermount3 for mounts by users other than root)
#   chromium-driver       headless Chromium and its chromedriver, through which
#                         metactl/tests/ui.rs drives the operator pages (WebDriver)
#   pjdfstest, fsx        (from crates.io) the POSIX test suite and the file system exerciser
#                         metactl/tests/fuse.rs runs on the mount
#   cargo-deb             (from crates.io) the Debian packages (scripts/package.sh), which
#                         metactl/tests/package.rs installs with dpkg; with dpkg-dev (their
#                         dependencies, dpkg-shlibdeps), adduser (what they depend on) and
#                         systemd (systemd-analyze, which checks their units)
# Idempotent: does nothing when everything is there. Uses sudo when not root.
set -euo pipefail

need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
if ! ls /usr/lib/*/libisal.so >/dev/null 2>&1 && ! ls /usr/local/lib/libisal.so >/dev/null 2>&1; then
  need+=(libisal-dev)
fi
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/*/libclang*.so* >/dev/null 2>&1; then
  need+=(libclang-dev)
fi

command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v setfattr >/dev/null 2>&1 || need+=(attr)
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium chromium-driver)
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
command -v adduser >/dev/null 2>&1 || need+=(adduser)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)

if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

for c in cargo rustfmt cargo-clippy; do
  command -v "$c" >/dev/null 2>&1 || { echo "error: $c is missing (install Rust with rustup's default profile)" >&2; exit 1; }
done

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "install-deps: installing cargo-fuzz (cargo install)" >&2
  cargo install --locked cargo-fuzz >&2
fi

# cargo-deb pinned: the packages' layout and maintainer scripts were checked with it.
for tool in pjdfstest fsx cargo-deb@3.8.0; do
  name="${tool%@*}"
  version=""
  [ "$name" = "$tool" ] || version="${tool#*@}"
  if ! command -v "$name" >/dev/null 2>&1 \
    || { [ -n "$version" ] && ! "$name" --version 2>/dev/null | grep -qF " $version"; }; then
    echo "install-deps: installing $tool (cargo install)" >&2
    cargo install --locked "$tool" >&2
  fi
done

# The Python WebHDFS clients, pinned (what the gateway's test was checked with).
venv="${XDG_CACHE_HOME:-$HOME/.cache}/raftfs/python"
python_clients="hdfs==2.7.3 fsspec==2026.9.0 requests"
if ! "$venv/bin/python" -c 'import hdfs, fsspec' >/dev/null 2>&1; then
  echo "install-deps: installing the WebHDFS Python clients into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q $python_clients >&2
fi
