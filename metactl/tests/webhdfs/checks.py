"""What both WebHDFS client scripts check errors with (clients.py, tls_clients.py)."""

from hdfs import HdfsError


def expect_hdfs_error(exception, call, *args, **kwargs):
    """`call` raises HdfsCLI's error for the Java exception named `exception`."""
    try:
        call(*args, **kwargs)
    except HdfsError as e:
        assert e.exception == exception, (exception, e.exception, str(e))
        return
    raise AssertionError(f"{call.__name__}{args} did not raise {exception}")


def expect(error, call, *args, **kwargs):
    """`call` raises `error` (fsspec's Python exceptions)."""
    try:
        call(*args, **kwargs)
    except error:
        return
    raise AssertionError(f"{call.__name__}{args} did not raise {error.__name__}")
