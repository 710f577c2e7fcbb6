#!/usr/bin/env bash
# The FUSE mount beside metactl, same cluster, same run (issue 22): a SIZE file written and
# read through the mount (dd, 1 MiB pieces) and through metactl (fs put, fs cat), for
# REPLICATED-3 and RS-6-3-1024k, both sides' copies checked by checksum; `ls -l` of a
# directory of FILES entries against `metactl fs ls`; and the shell tools on a tree of FILES
# files (tar x, cp -r, rsync -a into the mount; find, du, sha256sum over it), every copy
# checked file by file against the source. Prints MB/s (entries/s), the mount's ratio to
# metactl, the mount process's CPU per MiB, and each tool's time.
#   bench/fuse.sh              (SIZE_MIB=1024 FILES=10000 by default)
#   PARTS="bytes list" bench/fuse.sh   only some parts (bytes, list, tree)
#   TOGETHER=1 bench/fuse.sh     the tree's three copies at once, then their three checks at
#                                once (each is bound by round trips, not by the cores)
SIZE_MIB=${SIZE_MIB:-1024}
FILES=${FILES:-10000}
PARTS=${PARTS:-bytes list tree}
part() { [[ " $PARTS " == *" $1 "* ]]; }
. "$(dirname "$0")/peers.sh"

"$bin/metactl" local up --dir "$work/raftfs" --voters 3 --observers 0 \
  --blockservers 9 --racks 3 --detach >/dev/null
m=("$bin/metactl" --cluster "$work/raftfs")
mnt=$work/mnt
mkdir -p "$mnt"
"${m[@]}" mount "$mnt" > "$work/mount.out" 2> "$work/mount.log" &
mount_pid=$!
trap 'kill $mount_pid 2>/dev/null || true; wait $mount_pid 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 100); do grep -q '^mounted' "$work/mount.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^mounted' "$work/mount.out" || { cat "$work/mount.log" >&2; exit 1; }
head -c $((SIZE_MIB << 20)) /dev/urandom > "$work/src.bin"

timed_pid=$mount_pid  # timed (peers.sh) counts the mount's CPU
checksum() { "${m[@]}" fs checksum "$1" | cut -f3; }
manifest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

for policy in REPLICATED-3 RS-6-3-1024k; do
  part bytes || break
  d=/bench/$policy
  "${m[@]}" fs mkdir -p "$d" >/dev/null
  "${m[@]}" ec set-policy "$d" "$policy" >/dev/null
  echo "== $policy: $SIZE_MIB MiB" >&2
  timed "$policy metactl-put" "${m[@]}" fs put "$work/src.bin" "$d/by-metactl"
  timed "$policy fuse-write" dd if="$work/src.bin" of="$mnt$d/by-fuse" bs=1M status=none
  timed "$policy metactl-cat" sh -c "\"\$@\" fs cat $d/by-fuse > /dev/null" _ "${m[@]}"
  timed "$policy fuse-read" dd if="$mnt$d/by-metactl" of=/dev/null bs=1M status=none
  a=$(checksum "$d/by-metactl"); b=$(checksum "$d/by-fuse")
  [ "$a" = "$b" ] || { echo "checksums differ: $a $b" >&2; exit 1; }
done

if part list; then
echo "== ls -l of $FILES entries" >&2
run meta --op create --ops "$FILES" --files-per-dir "$FILES" --clients 64 \
  --roots /list --cluster "$work/raftfs" > /dev/null
dir=$("${m[@]}" fs ls /list | tail -n +2 | awk '{print $NF}' | head -1)/d0
timed "list metactl-ls" sh -c "\"\$@\" fs ls $dir > $work/ls.txt" _ "${m[@]}"
timed "list fuse-ls" sh -c "ls -l $mnt$dir > $work/ls-l.txt"
fi

if part tree; then
echo "== the shell tools on a tree of $FILES files" >&2
python3 - "$work/src" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = f"{root}/d{i // 100:03}" + ("/sub" if i % 4 == 0 else "")
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i:05}", "wb") as f:
        f.write(os.urandom([0, 1, 100, 4096, 5000, 20000][i % 6]))
PY
manifest "$work/src" > "$work/want"
want_du=$(du -sb --apparent-size "$work/src" | cut -f1)
mkdir "$mnt/tar"
copy() {
  case $1 in
    tar) timed "tree tar-x" sh -c "tar c -C $work/src . | tar x -C $mnt/tar" ;;
    cp) timed "tree cp-r" cp -r "$work/src" "$mnt/cp" ;;
    rsync) timed "tree rsync-a" rsync -a "$work/src/" "$mnt/rsync/" ;;
  esac
}
check() { # find, du and sha256sum of copy $1, each compared with the source
  local t=$1
  timed "tree find-$t" sh -c "find $mnt/$t -type f | wc -l > $work/found-$t"
  [ "$(cat "$work/found-$t")" = "$FILES" ] || { echo "find in $t: $(cat "$work/found-$t")" >&2; return 1; }
  timed "tree du-$t" sh -c "du -sb --apparent-size $mnt/$t | cut -f1 > $work/du-$t"
  [ "$(cat "$work/du-$t")" = "$want_du" ] || { echo "du of $t: $(cat "$work/du-$t") != $want_du" >&2; return 1; }
  timed "tree sha256sum-$t" sh -c "cd $mnt/$t && find . -type f -print0 | sort -z | xargs -0 -r sha256sum > $work/got-$t"
  cmp -s "$work/want" "$work/got-$t" || { echo "sha256sum of $t differs" >&2; return 1; }
}
if [ -n "${TOGETHER:-}" ]; then
  t0=$(date +%s.%N)
  copy tar & a=$!; copy cp & b=$!; copy rsync & c=$!
  wait $a && wait $b && wait $c
  echo "tree all-three-copies-at-once $(awk "BEGIN{print $(date +%s.%N) - $t0}") 0" >> "$work/times"
  t0=$(date +%s.%N)
  check tar & a=$!; check cp & b=$!; check rsync & c=$!
  wait $a && wait $b && wait $c
  echo "tree all-three-checks-at-once $(awk "BEGIN{print $(date +%s.%N) - $t0}") 0" >> "$work/times"
else
  for t in tar cp rsync; do copy $t; done
  for t in tar cp rsync; do check $t; done
fi
[ -z "$(rsync -a --dry-run --itemize-changes "$work/src/" "$mnt/rsync/")" ] \
  || { echo "rsync -a finds differences after its copy" >&2; exit 1; }
echo "every copy matches: $FILES files, $want_du bytes" >&2
fi

python3 - "$work/times" "$SIZE_MIB" "$FILES" "$work/ls.txt" "$work/ls-l.txt" <<'PY'
import sys
times, size, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = {}
for line in open(times):
    *name, wall, cpu = line.split()
    t[" ".join(name)] = (float(wall), float(cpu))
print(f"\n{'run':<38}{'metactl':>10}{'mount':>10}{'ratio':>8}{'mount CPU':>14}")
for policy in ("REPLICATED-3", "RS-6-3-1024k"):
    if f"{policy} metactl-put" not in t:
        break
    for what, mine, theirs in (("write", "metactl-put", "fuse-write"),
                               ("read", "metactl-cat", "fuse-read")):
        mw, _ = t[f"{policy} {mine}"]
        fw, fc = t[f"{policy} {theirs}"]
        print(f"{policy + ' ' + what + ', MB/s':<38}{size*1.048576/mw:>10.1f}"
              f"{size*1.048576/fw:>10.1f}{mw/fw:>8.2f}{fc/size*1000:>10.2f} ms/MiB")
if "list fuse-ls" in t:
    ls = sum(1 for _ in open(sys.argv[4])) - 1      # after "Found N items"
    ls_l = sum(1 for _ in open(sys.argv[5])) - 1    # after "total N"
    assert ls == files and ls_l == files, (ls, ls_l, files)
    mw, _ = t["list metactl-ls"]
    fw, fc = t["list fuse-ls"]
    print(f"{f'list {files} entries, entries/s':<38}{files/mw:>10.0f}{files/fw:>10.0f}"
          f"{mw/fw:>8.2f}{fc/files*1e6:>10.1f} us/entry")
tree = [(n[5:], w, c) for n, (w, c) in t.items() if n.startswith("tree ")]
if tree:
    print(f"\n{f'tree of {files} files':<38}{'seconds':>10}{'files/s':>10}{'mount CPU':>14}")
for name, wall, cpu in tree:
    print(f"{name:<38}{wall:>10.1f}{files/wall:>10.0f}{cpu/files*1e3:>10.2f} ms/file")
PY
