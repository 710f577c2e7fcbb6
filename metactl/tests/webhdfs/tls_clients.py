"""swebhdfs: the real Python WebHDFS clients over HTTPS with client certificates
(metactl/tests/webhdfs.rs, `swebhdfs_...`). Each user is known by its certificate; the gateway
acts for it under the cluster's proxy rule. Every check is an assertion; at the end one JSON
line names the files written and their SHA-256, for the Rust side to read back.

    python tls_clients.py URL CERT_DIR SCRATCH_DIR

CERT_DIR holds ca.pem and users/NAME.{pem,key}.
"""

import hashlib
import json
import os
import sys
from urllib.parse import urlparse

import fsspec
import requests
from checks import expect_hdfs_error
from hdfs import Client

URL, CERTS, SCRATCH = sys.argv[1], sys.argv[2], sys.argv[3]
# requests lets a CA bundle named in the environment win over a session's own `verify`
# (psf/requests#3829): the machine's bundle does not know the cluster's CA.
for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(name, None)
CA = os.path.join(CERTS, "ca.pem")
written = {}


def cert(user):
    base = os.path.join(CERTS, "users", user)
    return (base + ".pem", base + ".key")


def client(user):
    """HdfsCLI as its users reach a secured cluster: a session with their certificate."""
    s = requests.Session()
    s.cert = cert(user)
    s.verify = CA
    return Client(URL, session=s)


def data_of(size, seed):
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    return bytes(b ^ (i * seed & 0xFF) for i, b in enumerate(data[:size]))


alice, bob, carol, dave = client("alice"), client("bob"), client("carol"), client("dave")

# alice (group staff): her home, and the staff directory through her certificate's group.
data = data_of(3 * 1024 * 1024 + 17, 7)
alice.write("/user/alice/over-https.bin", data=data)
with alice.read("/user/alice/over-https.bin", offset=100, length=1000) as r:
    assert r.read() == data[100:1100]
st = alice.status("/user/alice/over-https.bin")
assert st["owner"] == "alice" and st["length"] == len(data), st
written["/user/alice/over-https.bin"] = hashlib.sha256(data).hexdigest()
alice.write("/staff/alice.txt", data=b"staff only\n")
written["/staff/alice.txt"] = hashlib.sha256(b"staff only\n").hexdigest()
# user.name is ignored once the certificate names the user: still alice, not bob.
r = requests.get(f"{URL}/webhdfs/v1/?op=GETHOMEDIRECTORY&user.name=bob", cert=cert("alice"),
                 verify=CA)
assert r.json() == {"Path": "/user/alice"}, r.text

# bob: his own home, not alice's files, not the staff directory (not in the group).
bob.makedirs("/user/bob/d")
expect_hdfs_error("AccessControlException", bob.write, "/user/alice/bob.txt", data=b"x")
expect_hdfs_error("AccessControlException", bob.write, "/staff/bob.txt", data=b"x")
alice.set_permission("/user/alice/over-https.bin", "600")
expect_hdfs_error("AccessControlException", bob.read("/user/alice/over-https.bin").__enter__)

# carol (not a user the rule names) and dave (in a group it does not allow): the cluster
# refuses the gateway's act-as, and nothing is done.
expect_hdfs_error("AccessControlException", carol.list, "/")
expect_hdfs_error("AccessControlException", carol.makedirs, "/user/carol")
expect_hdfs_error("AccessControlException", dave.list, "/")

# No certificate: the handshake is refused.
try:
    requests.get(f"{URL}/webhdfs/v1/?op=LISTSTATUS", verify=CA)
    raise AssertionError("a caller without a certificate was served")
except requests.exceptions.RequestException:
    pass

# fsspec's WebHDFS over HTTPS with the same certificate.
u = urlparse(URL)
fs = fsspec.filesystem("webhdfs", host=u.hostname, port=u.port, use_https=True,
                       session_cert=cert("alice"), session_verify=CA)
fs.pipe_file("/user/alice/fsspec.bin", data[:100000])
assert fs.cat_file("/user/alice/fsspec.bin", start=10, end=30) == data[10:30]
assert fs.info("/user/alice/fsspec.bin")["owner"] == "alice"
assert fs.exists("/user/alice/fsspec.bin")
fs.mv("/user/alice/fsspec.bin", "/user/alice/fsspec-moved.bin")
written["/user/alice/fsspec-moved.bin"] = hashlib.sha256(data[:100000]).hexdigest()

print(json.dumps({"written": written}))
