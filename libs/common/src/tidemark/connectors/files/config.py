"""Fields every file source has: where the files are, which globs are streams, how to parse them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tidemark.connectors.base import ConnectorConfig

FileFormat = Literal["parquet", "csv", "jsonl"]
Compression = Literal["auto", "none", "gzip", "zstd"]
OnBadFile = Literal["fail", "skip"]


class CsvOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delimiter: str = Field(default=",", min_length=1, max_length=1, description="Field separator.")
    quote_char: str = Field(default='"', min_length=1, max_length=1, description="Quote character.")
    header: bool = Field(default=True, description="The first line names the columns; false: `column_names`.")
    column_names: list[str] = Field(
        default_factory=list, description="Column names when `header` is false (else `f0`, `f1`, ...)."
    )
    encoding: str = Field(
        default="utf-8",
        description="Text encoding, e.g. `utf-8`, `latin-1`, `cp1252`. Under `utf-8` a byte sequence that is "
                    "not UTF-8 is a bad file, never stored as mojibake.",
    )
    null_values: list[str] = Field(
        default_factory=lambda: ["", "NULL", "null"], description="Field values read as null."
    )


class FileStream(BaseModel):
    """One stream: every file under the source's prefix whose path matches ``glob``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Stream name (becomes the table name).")
    glob: str = Field(
        min_length=1,
        description="Pattern of the files' paths below `prefix`: `*` and `?` stay within one folder, "
                    "`**/` spans folders, e.g. `orders/**/*.csv.gz`.",
    )
    format: FileFormat = Field(description="`parquet`, `csv` or `jsonl` (one JSON object per line).")
    compression: Compression = Field(
        default="auto",
        description="`auto` decompresses by file name (`.gz`, `.zst`); `none`, `gzip`, `zstd` force it. "
                    "Parquet compresses inside the file: leave `auto`.",
    )
    csv: CsvOptions = Field(default_factory=CsvOptions, description="CSV parsing options (format `csv`).")
    primary_key: list[str] = Field(
        default_factory=list, description="Columns that identify a row, when the files have such a key."
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value != value.strip() or "/" in value:
            raise ValueError("a stream name has no slash and no leading or trailing space")
        return value


class FilesConfig(ConnectorConfig):
    """Fields every file source has; each store adds its location and credentials."""

    prefix: str = Field(default="", description="Folder inside the bucket or container; empty: its root.")
    streams: list[FileStream] = Field(min_length=1, description="Streams, each a glob of files.")
    on_bad_file: OnBadFile = Field(
        default="fail",
        description="A file that cannot be parsed: `fail` the stream with an error naming the file and line "
                    "(or row group), or `skip` it and report it as a run warning.",
    )
    sample_files: int = Field(
        default=10, ge=1, le=1000, description="Newest files of each stream whose schema `discover` merges."
    )
    sample_bytes: int = Field(
        default=1 << 20, ge=1024, le=1 << 28,
        description="Bytes read from the start of each sampled CSV or JSON-lines file to infer its types.",
    )
    batch_size: int = Field(default=65_536, ge=1, le=1_000_000, description="Most rows in one Arrow batch.")
    file_columns: bool = Field(
        default=True,
        description="Add `_file` (the file's path) and `_file_modified_at` (its modification time, the cursor "
                    "of incremental reads) to every stream.",
    )

    @model_validator(mode="after")
    def _unique_streams(self) -> FilesConfig:
        names = [s.name for s in self.streams]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stream names must be unique; repeated: {', '.join(dupes)}")
        return self

    def stream(self, name: str) -> FileStream | None:
        return next((s for s in self.streams if s.name == name), None)

    def root(self) -> str:
        return self.prefix.strip("/")
