"""Parquet, CSV and JSON lines: a file's schema, and its rows in bounded batches.

Every parse error leaves as :class:`BadFile`, naming the file and where in it (the line of a
text file, the row group of a Parquet file), so the source can fail or skip it by its setting.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from typing import IO, cast

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from tidemark.connectors.files.config import FileStream
from tidemark.connectors.files.listing import FileEntry

BLOCK_BYTES = 4 << 20
NOT_UTF8 = "not valid UTF-8 text (a CSV file in another encoding needs the stream's csv.encoding)"
_CODECS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}


class BadFile(Exception):  # noqa: N818 - a file's verdict, translated by the source
    """``key`` cannot be parsed; ``where`` is ``line N`` or ``row group N`` when known."""

    def __init__(self, key: str, detail: str, where: str | None = None) -> None:
        self.key, self.detail, self.where = key, detail, where
        super().__init__(self.message)

    @property
    def message(self) -> str:
        at = f", {self.where}" if self.where else ""
        return f"file {self.key}{at}: {self.detail}"


def codec(stream: FileStream, key: str) -> str | None:
    if stream.format == "parquet" or stream.compression == "none":
        return None
    if stream.compression != "auto":
        return stream.compression
    lowered = key.lower()
    return next((c for ext, c in _CODECS.items() if lowered.endswith(ext)), None)


def open_text(fs: pafs.FileSystem, entry: FileEntry, stream: FileStream) -> pa.NativeFile:
    """The file's bytes, decompressed."""
    raw = fs.open_input_stream(entry.path, compression=None)
    name = codec(stream, entry.key)
    return pa.CompressedInputStream(raw, name) if name else raw


def _utf8(stream: FileStream) -> bool:
    return codecs.lookup(stream.csv.encoding).name == "utf-8" if stream.format == "csv" else True


# -- schema ---------------------------------------------------------------------------------------------


def _head(fs: pafs.FileSystem, entry: FileEntry, stream: FileStream, limit: int) -> bytes:
    """The first ``limit`` bytes of the decompressed file, cut after the last complete line."""
    with open_text(fs, entry, stream) as f:
        data = f.read(limit)
        complete = not f.read(1)
    head = bytes(data)
    if not complete:
        cut = head.rfind(b"\n")
        head = head[: cut + 1] if cut >= 0 else head
    return head


def file_schema(fs: pafs.FileSystem, entry: FileEntry, stream: FileStream, sample_bytes: int) -> pa.Schema:
    """The schema of one file: its Parquet footer, or types inferred from the first ``sample_bytes``."""
    if stream.format == "parquet":
        try:
            with fs.open_input_file(entry.path) as f:
                return pq.read_schema(f)
        except (pa.ArrowInvalid, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise BadFile(entry.key, f"not a readable Parquet file (its footer): {exc}") from exc
    try:
        head = _head(fs, entry, stream, sample_bytes)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadFile(entry.key, f"cannot decompress ({codec(stream, entry.key)}): {exc}") from exc
    if _utf8(stream):
        _check_utf8(head, entry.key)
    try:
        if stream.format == "csv":
            table = pacsv.read_csv(io.BytesIO(head), read_options=_csv_read(stream),
                                   parse_options=_csv_parse(stream), convert_options=_csv_convert(stream, None))
        else:
            table = pajson.read_json(io.BytesIO(head), read_options=pajson.ReadOptions(block_size=max(len(head), 1)))
    except pa.ArrowInvalid as exc:
        if b"\n" not in head.strip() and not head.strip():
            return pa.schema([])
        raise _located(entry, stream, exc, 0, lambda: io.BytesIO(head)) from exc
    return table.schema


def _check_utf8(data: bytes, key: str, first_line: int = 1) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        raise BadFile(key, NOT_UTF8, f"line {line}") from exc


# -- rows ---------------------------------------------------------------------------------------------


def _csv_read(stream: FileStream) -> pacsv.ReadOptions:
    o = stream.csv
    names = o.column_names if not o.header and o.column_names else None
    return pacsv.ReadOptions(block_size=BLOCK_BYTES, encoding=o.encoding, column_names=names,
                             autogenerate_column_names=not o.header and not o.column_names)


def _csv_parse(stream: FileStream) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(delimiter=stream.csv.delimiter, quote_char=stream.csv.quote_char,
                              newlines_in_values=True)


def _csv_convert(stream: FileStream, schema: pa.Schema | None) -> pacsv.ConvertOptions:
    types = {f.name: f.type for f in schema} if schema is not None else None
    return pacsv.ConvertOptions(column_types=types, null_values=stream.csv.null_values,
                                strings_can_be_null=True, check_utf8=True)


def batches(fs: pafs.FileSystem, entry: FileEntry, stream: FileStream, schema: pa.Schema,
            sample_bytes: int, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The file's rows in batches of at most ``batch_size`` rows, typed as ``schema`` where the file
    has its columns (the source conforms them); raises :class:`BadFile`."""
    if stream.format == "parquet":
        yield from _parquet(fs, entry, batch_size, schema.names)
        return
    rows = 0
    try:
        with open_text(fs, entry, stream) as f:
            if stream.format == "csv":
                reader = pacsv.open_csv(f, read_options=_csv_read(stream), parse_options=_csv_parse(stream),
                                        convert_options=_csv_convert(stream, schema))
            else:
                own = file_schema(fs, entry, stream, sample_bytes)
                explicit = pa.schema([pa.field(s.name, _json_type(own, s)) for s in schema])
                reader = pajson.open_json(f, read_options=pajson.ReadOptions(block_size=BLOCK_BYTES),
                                          parse_options=pajson.ParseOptions(explicit_schema=explicit,
                                                                            unexpected_field_behavior="ignore"))
            for batch in reader:
                if stream.format == "jsonl":
                    # pyarrow's JSON reader takes bytes that are not UTF-8 into strings unchecked.
                    batch.validate(full=True)
                for offset in range(0, batch.num_rows, batch_size):
                    yield batch.slice(offset, batch_size)
                rows += batch.num_rows
    except BadFile:
        raise
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _located(entry, stream, exc, rows, lambda: open_text(fs, entry, stream)) from exc
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | ConnectionError | TimeoutError):
            raise
        raise BadFile(entry.key, f"cannot read or decompress it: {exc}") from exc


def _json_type(own: pa.Schema, field: pa.Field) -> pa.DataType:
    """The type to parse a JSON column as: the file's own (cast to the stream's afterwards), so a file of
    numbers in a column other files made text still parses; the stream's where the file shows none."""
    index = own.get_field_index(field.name)
    if index < 0 or pa.types.is_null(own.field(index).type):
        return field.type
    return own.field(index).type


def _parquet(fs: pafs.FileSystem, entry: FileEntry, batch_size: int,
             wanted: list[str]) -> Iterator[pa.RecordBatch]:
    """Row group by row group, only the ``wanted`` columns the file has (a wide file's others stay unread)."""
    try:
        f = fs.open_input_file(entry.path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadFile(entry.key, f"cannot open it: {exc}") from exc
    with f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadFile(entry.key, f"not a readable Parquet file (its footer): {exc}") from exc
        present = set(pf.schema_arrow.names)
        columns = [n for n in wanted if n in present]
        # Parquet readers take string bytes as they are; a writer that put other bytes there would
        # put them in our table, so strings are checked (about 15 ms per million values).
        texts = any(pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_nested(f.type)
                    for f in pf.schema_arrow if f.name in columns)
        for group in range(pf.num_row_groups):
            try:
                for batch in pf.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns):
                    if texts:
                        _check_strings(batch, entry.key, group)
                    yield batch
            except (pa.ArrowInvalid, OSError) as exc:
                raise BadFile(entry.key, f"cannot decode it: {exc}", f"row group {group}") from exc


def _check_strings(batch: pa.RecordBatch, key: str, group: int) -> None:
    for field, column in zip(batch.schema, batch.columns, strict=True):
        try:
            column.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise BadFile(key, f"column {field.name!r} holds text that is not valid UTF-8 ({exc})",
                          f"row group {group}") from exc


# -- locating an error ------------------------------------------------------------------------------------

_JSON_ROW = re.compile(r"in row (\d+)")
_CSV_VALUE = re.compile(r"In CSV column #(\d+): .*invalid value '(.*)'$", re.S)
_CSV_COLUMNS = re.compile(r"Expected \d+ columns, got \d+: (.*)$", re.S)


def _located(entry: FileEntry, stream: FileStream, exc: Exception, rows_before: int,
             reopen: Callable[[], io.IOBase | pa.NativeFile]) -> BadFile:
    """``exc`` as a BadFile naming the line: pyarrow names rows within a block (JSON) or only the
    offending value (CSV), so the line is found by reading the file again up to it."""
    detail = str(exc).removeprefix("JSON parse error: ").removeprefix("CSV parse error: ")
    if isinstance(exc, UnicodeDecodeError) or any(t in detail for t in ("invalid UTF8", "Invalid UTF8", "UTF-8")):
        line = _first_bad_utf8_line(reopen)
        return BadFile(entry.key, NOT_UTF8, f"line {line}" if line else None)
    if stream.format == "jsonl":
        m = _JSON_ROW.search(detail)
        line = _first_bad_json_line(reopen) if m is None else rows_before + int(m.group(1)) + 1
        return BadFile(entry.key, detail, f"line {line}" if line else None)
    line = _csv_line(stream, reopen, detail)
    return BadFile(entry.key, detail, f"line {line}" if line else None)


def _binary(f: io.IOBase | pa.NativeFile) -> IO[bytes]:
    """A line-iterable binary file over pyarrow's stream or a Python one."""
    return cast(IO[bytes], io.BufferedReader(f) if isinstance(f, pa.NativeFile) else f)


def _lines(reopen: Callable[[], io.IOBase | pa.NativeFile]) -> Iterator[bytes]:
    with reopen() as f:
        yield from _binary(f)


def _first_bad_utf8_line(reopen: Callable[[], io.IOBase | pa.NativeFile]) -> int | None:
    for number, raw in enumerate(_lines(reopen), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return None


def _first_bad_json_line(reopen: Callable[[], io.IOBase | pa.NativeFile]) -> int | None:
    for number, raw in enumerate(_lines(reopen), start=1):
        if raw.strip():
            try:
                json.loads(raw)
            except ValueError:
                return number
    return None


def _csv_line(stream: FileStream, reopen: Callable[[], io.IOBase | pa.NativeFile], detail: str) -> int | None:
    """The physical line of the CSV record the error is about (pyarrow does not say)."""
    value = _CSV_VALUE.search(detail)
    columns = _CSV_COLUMNS.search(detail)
    if value is None and columns is None:
        return None
    with reopen() as f:
        text = io.TextIOWrapper(cast(io.BufferedReader, _binary(f)), encoding=stream.csv.encoding,
                                errors="replace", newline="")
        reader = csv.reader(text, delimiter=stream.csv.delimiter, quotechar=stream.csv.quote_char)
        width = None
        for record in reader:
            if width is None:
                width = len(record)
                if stream.csv.header:
                    continue
            if value is not None:
                index = int(value.group(1))
                if index < len(record) and record[index] == value.group(2):
                    return reader.line_num
            elif len(record) != width and record:
                return reader.line_num
    return None
