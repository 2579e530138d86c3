"""The warehouse FileIO: built once per process in effect, and said once, at DEBUG."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tidemark.lakehouse import LakehouseSettings
from tidemark.lakehouse.settings import S3Settings
from tidemark.lakehouse.storage import TidemarkFileIO

pytestmark = pytest.mark.unit


def s3_properties(bucket_key: str = "AKIA") -> dict[str, str]:
    settings = LakehouseSettings(
        catalog_uri="sqlite:////tmp/cat.db", warehouse="s3://bucket/lake",
        s3=S3Settings.model_validate({"endpoint": "http://127.0.0.1:9", "access_key_id": bucket_key,
                                      "secret_access_key": "secret", "region": "us-east-1"}),
    )
    return settings.file_io_properties()


def test_file_ios_with_the_same_properties_share_their_filesystems() -> None:
    # pyiceberg builds a FileIO per table load and commit; each must not build a new S3 client.
    first, second = TidemarkFileIO(s3_properties()), TidemarkFileIO(s3_properties())
    assert first is not second
    assert first.fs_by_scheme("s3", "bucket") is second.fs_by_scheme("s3", "bucket")
    assert first.fs_by_scheme("s3", "bucket") is not first.fs_by_scheme("s3", "other-bucket")
    other_credentials = TidemarkFileIO(s3_properties(bucket_key="AKIB"))
    assert other_credentials.fs_by_scheme("s3", "bucket") is not first.fs_by_scheme("s3", "bucket")


# A process like the worker: configure logging, then write two streams (each a create and a commit).
WRITE_TWO_STREAMS = textwrap.dedent("""
    import sys
    import pyarrow as pa
    from tidemark.events import DestinationSpec, SyncMode
    from tidemark.lakehouse import LakehouseSettings, WriteRequest
    from tidemark.lakehouse.destination import Lakehouse
    from tidemark.logs import configure_logging

    level, home = sys.argv[1], sys.argv[2]
    configure_logging(level, "text")
    lakehouse = Lakehouse(LakehouseSettings(catalog_uri=f"sqlite:///{home}/catalog.db",
                                            warehouse=f"file://{home}/warehouse"))
    destination = DestinationSpec(kind="iceberg", namespace="demo")
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64())})
    for name in ("demo.customers", "demo.orders"):
        lakehouse.read_state(destination, name)
        lakehouse.write(destination, WriteRequest(name, table.schema, SyncMode.FULL_REFRESH, ["id"], "run-1", None),
                        table.to_batches())
    lakehouse.close()
    print("written", file=sys.stderr)
""")


def _write_two_streams(level: str, home: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", WRITE_TWO_STREAMS, level, str(home)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1] == "written"
    return lines


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_loaded_file_io_is_logged_at_most_once_and_only_at_debug(level: str, tmp_path: Path) -> None:
    lines = _write_two_streams(level, tmp_path)
    loaded = [line for line in lines if "Loaded FileIO" in line]
    if level == "DEBUG":
        # pyiceberg built the FileIO a dozen times here; the log says it once.
        assert len(loaded) == 1, lines
        assert " DEBUG pyiceberg.io: Loaded FileIO: tidemark.lakehouse.storage.TidemarkFileIO" in loaded[0]
        opened = [line for line in lines if "warehouse filesystem opened" in line]
        assert len(opened) == 1, lines
    else:
        assert loaded == [], lines
        assert not any(" DEBUG " in line for line in lines)
