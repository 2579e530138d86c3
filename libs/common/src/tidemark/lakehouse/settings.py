"""Where Iceberg tables and Parquet files live: the catalog and the warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

_ASYNC_DRIVERS = ("+asyncpg", "+aiosqlite", "+aiomysql", "+asyncmy")


class LakehouseSettings(BaseModel):
    """The Iceberg catalog and warehouse every write goes to.

    Empty ``catalog_uri`` and ``warehouse`` mean "under the home directory";
    :meth:`resolve` fills them in, so a worker started elsewhere sees absolute paths.
    """

    catalog_type: Literal["sql", "rest"] = Field(
        default="sql",
        description="`sql` (SQLite embedded, PostgreSQL in production) or `rest` (an Iceberg REST catalog).",
    )
    catalog_uri: str = Field(
        default="",
        description=(
            "SQL catalog: a synchronous SQLAlchemy URL (`sqlite:///path.db`, `postgresql+psycopg://...`); "
            "REST catalog: its base URL. Empty means `sqlite:///<home>/catalog.db`."
        ),
    )
    warehouse: str = Field(
        default="",
        description=(
            "Root of table data: `file:///abs/path`, `s3://bucket/prefix` or `abfs://container@account...`. "
            "Empty means `file://<absolute home>/warehouse`. Parquet output goes under `<warehouse>/parquet/`."
        ),
    )
    properties: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra pyiceberg catalog and FileIO properties, e.g. `s3.endpoint`, `s3.access-key-id`, "
            "`adls.account-name`. Passed through unchanged."
        ),
    )

    @field_validator("catalog_uri")
    @classmethod
    def _sync_driver(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if any(scheme.endswith(d) for d in _ASYNC_DRIVERS):
            # pyiceberg's SQL catalog is synchronous; an async driver fails deep inside SQLAlchemy.
            raise ValueError(
                "catalog_uri: the Iceberg SQL catalog needs a synchronous driver, "
                "e.g. `sqlite:///...` or `postgresql+psycopg://...`"
            )
        return value

    def resolve(self, home: Path) -> LakehouseSettings:
        """A copy with empty locations filled in under ``home`` (made absolute)."""
        root = home.expanduser().resolve()
        update: dict[str, str] = {}
        if not self.catalog_uri and self.catalog_type == "sql":
            update["catalog_uri"] = f"sqlite:///{root / 'catalog.db'}"
        if not self.warehouse:
            update["warehouse"] = (root / "warehouse").as_uri()
        return self.model_copy(update=update) if update else self

    @property
    def uses_sqlite(self) -> bool:
        return self.catalog_type == "sql" and self.catalog_uri.startswith("sqlite")
