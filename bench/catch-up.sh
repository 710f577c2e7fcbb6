#!/usr/bin/env bash
# A follower stopped while large entries are journaled catches up from the log (issue #15):
# runs the test `a_follower_stopped_during_large_xattr_batches_catches_up` (metactl/tests/
# failover.rs) with the issue's 300 batches of 512 concurrent 16 KiB xattr writes (2.4 GiB of
# attributes; CI runs 20). Prints the write time, the leader's log length, and how long the
# restarted follower took to catch up. Debug binaries, as the test suite builds them.
#   bench/catch-up.sh                        (BATCHES=300)
#   BATCHES=100 bench/catch-up.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
RAFTFS_CATCHUP_BATCHES=${BATCHES:-300} cargo test -p raftfs-metactl --test failover \
  a_follower_stopped_during_large_xattr_batches_catches_up -- --nocapture 2>&1 |
  grep -E "batches of|caught up|test result|panicked"
