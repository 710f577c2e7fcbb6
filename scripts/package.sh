#!/usr/bin/env bash
# Builds the Debian packages with cargo-deb (metadata in each crate's Cargo.toml, units and
# maintainer scripts in packaging/deb):
#   raftfs-metaserver   /usr/bin/metaserver, its systemd unit, /etc/raftfs/metaserver.toml
#   raftfs-blockserver  /usr/bin/blockserver, its systemd unit, /etc/raftfs/blockserver.toml
#   raftfs-tools        /usr/bin/metactl and loadgen, the Grafana dashboard and Prometheus
#                       configuration as examples
#
# Usage: scripts/package.sh [--profile PROFILE] [--no-build] [--out DIR]
#   --profile   the cargo profile whose binaries are packaged (default release; the package
#               test, metactl/tests/package.rs, packages the dev binaries it was built with)
#   --no-build  package the binaries already built for that profile
#   --out       where the .deb files go (default $CARGO_TARGET_DIR/debian)
# Prints the path of each package built.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--profile PROFILE] [--no-build] [--out DIR]" >&2; exit 2 ;;
  esac
done

. scripts/env.sh
out="${out:-$CARGO_TARGET_DIR/debian}"
mkdir -p "$out"

command -v cargo-deb >/dev/null 2>&1 || ./scripts/install-deps.sh

if [ "$build" = 1 ]; then
  cargo build --profile "$profile" -p raftfs-metaserver -p raftfs-blockserver \
    -p raftfs-metactl -p raftfs-loadgen --bins >&2
fi

# The dev binaries are packaged only to be installed by the test, which should not wait for
# a release build: the quicker compression (release packages get cargo-deb's default, xz).
# cargo-deb 3.8 warns that it may refuse the dev profile one day; install-deps pins it.
fast=()
[ "$profile" = release ] || fast=(--fast)
for crate in raftfs-metaserver raftfs-blockserver raftfs-metactl; do
  cargo deb -p "$crate" --no-build --profile "$profile" "${fast[@]}" --output "$out"
done
