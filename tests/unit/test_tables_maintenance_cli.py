"""``tidemark tables health|compact|expire|clean`` against a real ingest-svc on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner, Result
from pydantic import SecretStr

from tidemark.api.app import build_app
from tidemark.bus import MemoryBus
from tidemark.events import SyncMode
from tidemark.lakehouse import WriteRequest, close_catalog, open_catalog, write_stream
from tidemark.settings import AuthSettings, DatabaseSettings, PlatformSettings
from tidemark_cli.main import cli
from tidemark_ingest.app import DEFINITION
from tidemark_ingest.settings import IngestSettings
from tidemark_testing.apps import served

pytestmark = pytest.mark.unit
TOKEN = "cli-token"
TABLE = "shop.orders"
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("at", pa.int64())])


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    settings = IngestSettings(platform=PlatformSettings(home=tmp_path),
                              database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}/ingest.db"),
                              auth=AuthSettings(tokens=[SecretStr(TOKEN)]), bus="memory")
    catalog = open_catalog(settings.lakehouse)
    for run in range(1, 5):
        write_stream(catalog, WriteRequest(TABLE, SCHEMA, SyncMode.INCREMENTAL, ["id"], f"run-{run}", "at"),
                     [pa.record_batch([pa.array([run, run + 1], pa.int64()), pa.array([run] * 2, pa.int64())],
                                      schema=SCHEMA)])
    close_catalog(catalog)
    app = build_app([(DEFINITION, settings)], title="t", bus=MemoryBus(), migrate=True)
    with served(app, "ingest-svc") as url:
        yield url


def tidemark(url: str, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--url", url, "--token", TOKEN, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_health_dry_run_compact_expire_clean(url: str) -> None:
    assert "data files: 4\ndelete files: 3\n" in tidemark(url, "tables", "health", TABLE).output
    dry = tidemark(url, "tables", "compact", TABLE, "--dry-run").output
    assert "4 data files and 3 delete files would be rewritten" in dry
    assert json.loads(tidemark(url, "--json", "tables", "health", TABLE).output)["data_files"] == 4

    done = tidemark(url, "tables", "compact", TABLE).output
    assert "data files: 4 -> 1" in done
    assert json.loads(tidemark(url, "--json", "tables", "health", TABLE).output)["delete_files"] == 0
    assert "0 snapshots would be expired" in tidemark(url, "tables", "expire", TABLE, "--dry-run").output
    assert "0 orphan files deleted" in tidemark(url, "tables", "clean", TABLE).output


def test_an_unknown_table_is_an_error_that_says_so(url: str) -> None:
    result = CliRunner().invoke(cli, ["--url", url, "--token", TOKEN, "tables", "compact", "shop.none"])
    assert result.exit_code != 0
    assert "shop.none does not exist" in result.output
