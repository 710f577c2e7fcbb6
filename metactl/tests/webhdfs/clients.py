"""The real Python WebHDFS clients against raftfs's gateway (metactl/tests/webhdfs.rs).

HdfsCLI (`hdfs`, InsecureClient) and fsspec's WebHDFS, as their users call them, on each
directory named in the arguments (a replicated one and an RS-6-3 one). Every check is an
assertion; at the end one JSON line names the files these clients wrote and their SHA-256,
for the Rust side to read back through the client crate.

    python clients.py URL SCRATCH_DIR SPEC_JSON

SPEC_JSON: {"dirs": [...], "from_rust": {path: {"sha256": hex, "crc32c": hex}}}
"""

import hashlib
import json
import os
import sys
from urllib.parse import urlparse

import fsspec
import requests
from checks import expect, expect_hdfs_error
from hdfs import HdfsError, InsecureClient

URL, SCRATCH, SPEC = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
written = {}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def local_file(name, size, seed):
    """A file of `size` bytes that differs per seed, and its bytes."""
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    data = bytes(b ^ (i * seed & 0xFF) for i, b in enumerate(data[:size]))
    path = os.path.join(SCRATCH, name)
    with open(path, "wb") as f:
        f.write(data)
    return path, data


def hdfscli(d, seed):
    alice = InsecureClient(URL, user="alice")
    bob = InsecureClient(URL, user="bob")
    base = f"{d}/hdfscli"
    alice.makedirs(f"{base}/sub")
    assert alice.status(base)["type"] == "DIRECTORY"

    # upload / download, byte for byte; a size that is no multiple of a cell or a packet.
    up, data = local_file(f"up-{seed}.bin", 5 * 1024 * 1024 + 12345, seed)
    alice.upload(f"{base}/up.bin", up)
    st = alice.status(f"{base}/up.bin")
    assert st["type"] == "FILE" and st["length"] == len(data), st
    down = os.path.join(SCRATCH, f"down-{seed}.bin")
    alice.download(f"{base}/up.bin", down, overwrite=True)
    with open(down, "rb") as f:
        assert f.read() == data
    with alice.read(f"{base}/up.bin", offset=1_000_000, length=70_000) as r:
        assert r.read() == data[1_000_000:1_070_000]

    # write (the two-step CREATE), list, content, checksum, permission, rename.
    small = b"hello from hdfscli\n" * 1000
    alice.write(f"{base}/sub/small.txt", data=small)
    assert alice.list(base) == ["sub", "up.bin"], alice.list(base)
    summary = alice.content(base)
    assert summary["fileCount"] == 2 and summary["directoryCount"] == 2, summary
    assert summary["length"] == len(data) + len(small), summary
    # Copies and parity: three replicas; or six data cells and three parity cells a stripe
    # (a short stripe's parity cells as long as its longest data cell).
    if "/rep/" in base:
        assert summary["spaceConsumed"] == 3 * summary["length"], summary
    else:
        assert summary["length"] < summary["spaceConsumed"] <= 4 * summary["length"], summary
    sum1 = alice.checksum(f"{base}/up.bin")
    assert sum1["algorithm"] == "COMPOSITE-CRC32C" and sum1["length"] == 4, sum1
    alice.set_permission(f"{base}/up.bin", "600")
    assert alice.status(f"{base}/up.bin")["permission"] == "600"
    alice.rename(f"{base}/up.bin", f"{base}/moved.bin")
    assert alice.status(f"{base}/up.bin", strict=False) is None
    assert alice.status(f"{base}/moved.bin")["length"] == len(data)

    # Errors as HDFS raises them.
    expect_hdfs_error("FileNotFoundException", alice.status, f"{base}/nope")
    expect_hdfs_error("PathIsNotEmptyDirectoryException", alice.delete, f"{base}/sub")
    expect_hdfs_error("AccessControlException", bob.write, f"{base}/bob.txt", data=b"x")
    expect_hdfs_error("AccessControlException", bob.read(f"{base}/moved.bin").__enter__)

    # Files read from the Rust side's writes, checked against what it wrote.
    for path, want in SPEC["from_rust"].items():
        if path.startswith(d + "/"):
            with alice.read(path) as r:
                assert sha(r.read()) == want["sha256"], path
            got = alice.checksum(path)
            assert got["bytes"] == want["crc32c"], (path, got, want)

    alice.write(f"{d}/by-hdfscli.bin", data=data, overwrite=True)
    written[f"{d}/by-hdfscli.bin"] = sha(data)
    assert alice.delete(f"{base}/sub", recursive=True) is True
    assert alice.delete(f"{base}/sub", recursive=True) is False


def fs_spec(d, seed):
    u = urlparse(URL)
    fs = fsspec.filesystem("webhdfs", host=u.hostname, port=u.port, user="alice")
    bob = fsspec.filesystem("webhdfs", host=u.hostname, port=u.port, user="bob",
                            skip_instance_cache=True)
    base = f"{d}/fsspec"
    fs.mkdir(base)
    fs.mkdir(f"{base}/sub")

    # put / get.
    up, data = local_file(f"fs-{seed}.bin", 3 * 1024 * 1024 + 777, seed + 1)
    fs.put(up, f"{base}/put.bin")
    down = os.path.join(SCRATCH, f"fs-down-{seed}.bin")
    fs.get(f"{base}/put.bin", down)
    with open(down, "rb") as f:
        assert f.read() == data

    # open for writing: CREATE of an empty file, then an APPEND per 5 MiB block.
    _, big = local_file(f"big-{seed}.bin", 12 * 1024 * 1024 + 3, seed + 2)
    with fs.open(f"{base}/w.bin", "wb") as f:
        for i in range(0, len(big), 1 << 20):
            f.write(big[i:i + (1 << 20)])
    info = fs.info(f"{base}/w.bin")
    assert info["type"] == "file" and info["size"] == len(big), info
    with fs.open(f"{base}/w.bin", "rb") as f:
        f.seek(7_000_000)
        assert f.read(100_000) == big[7_000_000:7_100_000]
    assert fs.cat_file(f"{base}/w.bin", start=5, end=50) == big[5:50]
    assert fs.cat_file(f"{base}/w.bin", start=len(big) - 10) == big[-10:]

    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(base))
    assert names == ["put.bin", "sub", "w.bin"], names
    fs.mv(f"{base}/put.bin", f"{base}/sub/put.bin")
    assert fs.exists(f"{base}/sub/put.bin") and not fs.exists(f"{base}/put.bin")

    expect(FileNotFoundError, fs.info, f"{base}/nope")
    expect(PermissionError, bob.mkdir, f"{base}/bob")
    # A non-empty directory: fsspec raises RuntimeError for HDFS's
    # PathIsNotEmptyDirectoryException, as for any exception it has no class for.
    expect(RuntimeError, fs.rm, f"{base}/sub")

    written[f"{base}/w.bin"] = sha(big)
    fs.rm(f"{base}/sub", recursive=True)
    assert not fs.exists(f"{base}/sub")


def snapshots_and_policies(rep, rs):
    """Snapshots through HdfsCLI (the superuser allows them), a diff and the erasure-coding
    policies through plain requests (neither client has a call for them)."""
    root = InsecureClient(URL, user="root")
    alice = InsecureClient(URL, user="alice")
    root.allow_snapshot(rep)
    assert root.create_snapshot(rep, "s1") == f"{rep}/.snapshot/s1"
    alice.write(f"{rep}/after-s1.txt", data=b"later")
    report = requests.get(
        f"{URL}/webhdfs/v1{rep}",
        params={"op": "GETSNAPSHOTDIFF", "oldsnapshotname": "s1", "snapshotname": "",
                "user.name": "root"},
    ).json()["SnapshotDiffReport"]
    assert {"sourcePath": "after-s1.txt", "type": "CREATE"} in report["diffList"], report
    root.rename_snapshot(rep, "s1", "s2")
    with alice.read(f"{rep}/.snapshot/s2/by-hdfscli.bin") as r:
        assert sha(r.read()) == written[f"{rep}/by-hdfscli.bin"]
    assert alice.status(f"{rep}/.snapshot/s2/after-s1.txt", strict=False) is None
    root.delete_snapshot(rep, "s2")
    root.disallow_snapshot(rep)

    def ec(path):
        r = requests.get(f"{URL}/webhdfs/v1{path}",
                         params={"op": "GETECPOLICY", "user.name": "alice"})
        r.raise_for_status()
        return r.json()["ErasureCodingPolicy"]

    got = ec(rs)
    assert got["name"] == "RS-6-3-1024k" and got["numDataUnits"] == 6, got
    assert got["cellSize"] == 1 << 20, got
    assert ec(rep) is None
    alice.makedirs(f"{rep}/coded")
    r = requests.put(f"{URL}/webhdfs/v1{rep}/coded",
                     params={"op": "SETECPOLICY", "ecpolicy": "XOR-2-1-1024k",
                             "user.name": "alice"})
    r.raise_for_status()
    assert ec(f"{rep}/coded")["name"] == "XOR-2-1-1024k"
    requests.post(f"{URL}/webhdfs/v1{rep}/coded",
                  params={"op": "UNSETECPOLICY", "user.name": "alice"}).raise_for_status()
    assert ec(f"{rep}/coded") is None
    alice.delete(f"{rep}/coded")


def concurrent_uploads(d):
    """Two uploads by one user to one path at once: each has its own lease holder, so the
    second is refused while the first writes (HDFS's AlreadyBeingCreatedException) or
    replaces the file whole; the file is one of the two, never a mix."""
    import threading
    alice = InsecureClient(URL, user="alice")
    a, b = b"a" * (3 << 20), b"b" * (3 << 20)
    errors = []

    def upload(data):
        try:
            alice.write(f"{d}/race.bin", data=data, overwrite=True)
        except HdfsError as e:
            errors.append(e.exception)

    threads = [threading.Thread(target=upload, args=(x,)) for x in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(errors) <= {"AlreadyBeingCreatedException"}, errors
    with alice.read(f"{d}/race.bin") as r:
        assert r.read() in (a, b)
    alice.delete(f"{d}/race.bin")


def list_in_batches(d):
    """LISTSTATUS_BATCH (the gateway runs with --ls-limit 3): pages after startAfter, as the
    Java client reads them, until remainingEntries is 0; together what LISTSTATUS lists."""
    alice = InsecureClient(URL, user="alice")
    alice.makedirs(f"{d}/many")
    names = [f"e{i:02}" for i in range(8)]
    for n in names:
        alice.makedirs(f"{d}/many/{n}")
    whole = [s["pathSuffix"] for s in requests.get(
        f"{URL}/webhdfs/v1{d}/many", params={"op": "LISTSTATUS", "user.name": "alice"}
    ).json()["FileStatuses"]["FileStatus"]]
    assert whole == names, whole
    got, after, pages = [], "", []
    while True:
        params = {"op": "LISTSTATUS_BATCH", "user.name": "alice"}
        if after:
            params["startAfter"] = after
        r = requests.get(f"{URL}/webhdfs/v1{d}/many", params=params)
        r.raise_for_status()
        listing = r.json()["DirectoryListing"]
        batch = [s["pathSuffix"] for s in listing["partialListing"]["FileStatuses"]["FileStatus"]]
        pages.append((len(batch), listing["remainingEntries"]))
        got += batch
        if listing["remainingEntries"] == 0:
            break
        assert batch, pages
        after = batch[-1]
    assert got == names, got
    assert pages[0] == (3, 5) and pages[-1][1] == 0 and all(n <= 3 for n, _ in pages), pages
    alice.delete(f"{d}/many", recursive=True)


def bad_requests(d):
    """Requests a NameNode refuses are refused the same way, and change nothing."""
    def call(method, path, **params):
        params.setdefault("user.name", "alice")
        r = requests.request(method, f"{URL}/webhdfs/v1{path}", params=params,
                             allow_redirects=False)
        return r.status_code, r.json()["RemoteException"]["exception"]

    before = sorted(InsecureClient(URL, user="alice").list(d))
    for method, params in [
        ("GET", {"op": "NOSUCHOP"}),
        ("GET", {}),
        ("GET", {"op": "MKDIRS"}),
        ("PUT", {"op": "SETPERMISSION", "permission": "999"}),
        ("PUT", {"op": "SETTIMES", "modificationtime": "yesterday"}),
        ("DELETE", {"op": "DELETE", "recursive": "maybe"}),
        ("PUT", {"op": "RENAME", "destination": "relative/path"}),
        ("PUT", {"op": "SETXATTR", "xattr.name": "user.a", "xattr.value": "0xabc"}),
    ]:
        status, exception = call(method, d, **params)
        assert (status, exception) == (400, "IllegalArgumentException"), (params, status)
    assert call("GET", f"{d}/by-hdfscli.bin", op="OPEN", offset=str(1 << 40),
                data="true") == (400, "IllegalArgumentException")
    assert call("GET", d, op="GETFILESTATUS", **{"user.name": "-bad"}) == (
        400, "IllegalArgumentException")
    assert call("PUT", f"{d}/../../x", op="MKDIRS")[0] in (400, 403, 404)
    assert sorted(InsecureClient(URL, user="alice").list(d)) == before


for i, d in enumerate(SPEC["dirs"]):
    hdfscli(d, 10 + i)
    fs_spec(d, 20 + i)
snapshots_and_policies(*SPEC["dirs"])
list_in_batches(SPEC["dirs"][0])
bad_requests(SPEC["dirs"][0])
for d in SPEC["dirs"]:
    concurrent_uploads(d)
print(json.dumps({"written": written}))
