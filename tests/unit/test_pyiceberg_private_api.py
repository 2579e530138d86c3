"""A tripwire for pyiceberg upgrades: the writer uses pyiceberg internals (no public API streams
data files, writes position deletes or reads one file's rows batch by batch), so an upgrade that
renames or reshapes one of them must fail here, naming the internal and where Tidemark uses it,
before it fails somewhere deep in a write. pyiceberg is pinned to the minor version these tests
prove (libs/common/pyproject.toml); to move the pin, make these pass against the new version."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyiceberg
import pytest

from tidemark.events import SyncMode
from tidemark.lakehouse import LakehouseSettings, WriteRequest, open_catalog, write_stream
from tidemark.lakehouse.deletes import DeletesOverwrite

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Internal:
    module: str
    name: str  # may be dotted: Class.method
    parameters: tuple[str, ...]  # every parameter, in order (self included for methods)
    used_in: str

    def resolve(self) -> object:
        found: object = importlib.import_module(self.module)
        for part in self.name.split("."):
            found = getattr(found, part)
        return found


INTERNALS = [
    Internal("pyiceberg.io.pyarrow", "_dataframe_to_data_files",
             ("table_metadata", "df", "io", "write_uuid", "counter"),
             "tidemark/lakehouse/iceberg.py _write_files (chunked data files, committed together)"),
    Internal("pyiceberg.io.pyarrow", "_read_all_delete_files", ("io", "tasks"),
             "tidemark/lakehouse/merge.py Merger (rows a merge-on-read already deleted)"),
    Internal("pyiceberg.io.pyarrow", "ArrowScan._record_batches_from_scan_tasks_and_deletes",
             ("self", "tasks", "deletes_per_file"),
             "tidemark/lakehouse/merge.py Merger._scan (one file's rows, batch by batch)"),
    Internal("pyiceberg.io.pyarrow", "ArrowScan.__init__",
             ("self", "table_metadata", "io", "projected_schema", "row_filter", "case_sensitive", "limit",
              "dictionary_columns"),
             "tidemark/lakehouse/merge.py Merger._scan (called positionally)"),
    Internal("pyiceberg.io.pyarrow", "_pyarrow_to_schema_without_ids",
             ("schema", "downcast_ns_timestamp_to_us", "format_version"),
             "tidemark/lakehouse/schema.py iceberg_schema (Arrow schema → Iceberg schema)"),
    Internal("pyiceberg.io.pyarrow", "_to_requested_schema",
             ("requested_schema", "file_schema", "batch", "downcast_ns_timestamp_to_us", "include_field_ids",
              "projected_missing_fields", "allow_timestamp_tz_mismatch", "format_model"),
             "tidemark/lakehouse/datafiles.py DataFileWriter.write (batches in the file's schema)"),
    Internal("pyiceberg.io.pyarrow", "_get_parquet_writer_kwargs", ("table_properties",),
             "tidemark/lakehouse/datafiles.py DataFileWriter (the table's Parquet writer options)"),
    Internal("pyiceberg.io.pyarrow", "PyArrowFileIO._initialize_fs", ("self", "scheme", "netloc"),
             "tidemark/lakehouse/storage.py TidemarkFileIO._initialize_fs (one filesystem per process)"),
    Internal("pyiceberg.table.update.snapshot", "_OverwriteFiles.__init__",
             ("self", "operation", "transaction", "io", "commit_uuid", "snapshot_properties", "branch"),
             "tidemark/lakehouse/deletes.py DeletesOverwrite (an overwrite that also adds delete files)"),
    Internal("pyiceberg.table.update.snapshot", "_OverwriteFiles._existing_manifests", ("self",),
             "tidemark/lakehouse/deletes.py DeletesOverwrite._existing_manifests (drops delete manifests)"),
    Internal("pyiceberg.table.update.snapshot", "_OverwriteFiles._deleted_entries", ("self",),
             "tidemark/lakehouse/deletes.py DeletesOverwrite._deleted_entries (skipped when no data file goes)"),
    Internal("pyiceberg.table.update.snapshot", "_OverwriteFiles._manifests", ("self",),
             "tidemark/lakehouse/deletes.py DeletesOverwrite._manifests (adds the delete manifest)"),
    Internal("pyiceberg.table.update.snapshot", "_OverwriteFiles._summary", ("self", "snapshot_properties"),
             "tidemark/lakehouse/deletes.py DeletesOverwrite._summary (counts the delete files)"),
    Internal("pyiceberg.table.update.snapshot", "_OverwriteFiles.new_manifest_output", ("self",),
             "tidemark/lakehouse/deletes.py DeletesOverwrite._manifests"),
    Internal("pyiceberg.table.update.validate", "_validate_data_files_exist",
             ("table", "starting_snapshot", "data_files", "parent_snapshot"),
             "tidemark/lakehouse/maintenance/commit.py CompactionOverwrite._validate_concurrency (positional)"),
    Internal("pyiceberg.table.update.validate", "_validate_no_new_deletes_for_data_files",
             ("table", "starting_snapshot", "data_filter", "data_files", "parent_snapshot"),
             "tidemark/lakehouse/maintenance/commit.py CompactionOverwrite._validate_concurrency (positional)"),
    Internal("pyiceberg.table.update.snapshot", "_OverwriteFiles._validate_concurrency", ("self",),
             "tidemark/lakehouse/maintenance/commit.py CompactionOverwrite (a compaction's own conflict rules)"),
    Internal("pyiceberg.table.update.snapshot", "_OverwriteFiles._refresh_for_retry", ("self",),
             "tidemark/lakehouse/maintenance/commit.py CompactionOverwrite (resets its dropped delete files)"),
    Internal("pyiceberg.manifest", "ManifestWriterV2.__init__",
             ("self", "spec", "schema", "output_file", "snapshot_id", "avro_compression"),
             "tidemark/lakehouse/deletes.py _DeleteManifestWriter (called positionally)"),
]

# What DeletesOverwrite reads and writes on the instance pyiceberg's snapshot producer sets up.
PRODUCER_ATTRIBUTES = ("_io", "_snapshot_id", "_compression", "_transaction", "_added_data_files",
                       "_deleted_data_files", "_commit_window", "_parent_snapshot_id", "_target_branch")


def changed(what: str, used_in: str, detail: str) -> str:
    return (f"pyiceberg {pyiceberg.__version__} changed the private API {what}, which Tidemark uses in "
            f"{used_in}: {detail}. Adapt that code (or keep the pyiceberg pin in libs/common/pyproject.toml).")


@pytest.mark.parametrize("internal", INTERNALS, ids=lambda i: f"{i.module}.{i.name}")
def test_the_private_pyiceberg_apis_the_writer_uses_keep_their_shape(internal: Internal) -> None:
    where = f"{internal.module}.{internal.name}"
    try:
        found = internal.resolve()
    except (ImportError, AttributeError) as exc:
        pytest.fail(changed(where, internal.used_in, f"it is gone ({exc})"))
    parameters = tuple(inspect.signature(found).parameters)  # type: ignore[arg-type]
    assert parameters == internal.parameters, changed(
        where, internal.used_in, f"its parameters are now {parameters}, not {internal.parameters}")


def test_the_snapshot_producer_keeps_the_state_the_deletes_overwrite_uses(tmp_path: Path) -> None:
    catalog = open_catalog(LakehouseSettings().resolve(tmp_path))
    schema = pa.schema([pa.field("id", pa.int64())])
    write_stream(catalog, WriteRequest("ns.t", schema, SyncMode.FULL_REFRESH), [pa.record_batch([[1]], schema=schema)])
    table = catalog.load_table("ns.t")
    overwrite = DeletesOverwrite(table.transaction(), table.io, [], drop_deletes=True)
    missing = [a for a in PRODUCER_ATTRIBUTES if not hasattr(overwrite, a)]
    assert not missing, changed("pyiceberg.table.update.snapshot._SnapshotProducer", "tidemark/lakehouse/deletes.py "
                                "DeletesOverwrite", f"its instances no longer have {missing}")
    meta = inspect.getattr_static(importlib.import_module("pyiceberg.manifest").ManifestWriterV2, "_meta")
    assert isinstance(meta, property), changed("pyiceberg.manifest.ManifestWriterV2._meta",
                                               "tidemark/lakehouse/deletes.py _DeleteManifestWriter._meta",
                                               "it is no longer a property")
