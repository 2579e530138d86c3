"""Where Iceberg tables and Parquet files live: the catalog and the warehouse (local disk, S3, Azure).

Every secret is a ``SecretStr``: it shows as ``**********`` in reprs, logs and
validation errors, and is revealed only when the pyiceberg properties or a
worker's environment are built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_serializer, field_validator, model_validator

_ASYNC_DRIVERS = ("+asyncpg", "+aiosqlite", "+aiomysql", "+asyncmy")
S3_SCHEMES = ("s3", "s3a")
AZURE_SCHEMES = ("abfs", "abfss")
WAREHOUSE_SCHEMES = ("file", *S3_SCHEMES, *AZURE_SCHEMES)
FILE_IO = "tidemark.lakehouse.storage.TidemarkFileIO"
MergeStrategy = Literal["copy_on_write", "merge_on_read"]
DEFAULT_MERGE_STRATEGY: MergeStrategy = "merge_on_read"

_SECRET_WORDS = ("secret", "key", "token", "credential", "password", "sas", "connection-string", "signature")


class S3Settings(BaseModel):
    """Credentials and endpoint for an ``s3://bucket/prefix`` warehouse (AWS or S3-compatible)."""

    endpoint: str = Field(
        default="",
        description="S3-compatible endpoint URL, e.g. `http://127.0.0.1:9000`. Empty means AWS S3.",
    )
    region: str = Field(
        default="us-east-1",
        description="Bucket region. Always sent, so no request goes out to discover it.",
    )
    access_key_id: str = Field(
        default="", description="Access key id. Empty means the default AWS credential chain (env, profile, role)."
    )
    secret_access_key: SecretStr | None = Field(default=None, description="Secret access key (a secret).")
    session_token: SecretStr | None = Field(
        default=None, description="Session token of temporary credentials (a secret)."
    )
    path_style: bool = Field(
        default=True,
        description=(
            "With a custom `endpoint`, address buckets path-style (`endpoint/bucket/key`), as MinIO, moto and "
            "most S3-compatible stores expect; false forces virtual-hosted style (`bucket.endpoint/key`). "
            "AWS itself (no endpoint) is always addressed virtual-hosted style."
        ),
    )

    def properties(self) -> dict[str, str]:
        props = {"s3.region": self.region}
        if self.endpoint:
            props["s3.endpoint"] = self.endpoint
        if self.access_key_id:
            props["s3.access-key-id"] = self.access_key_id
        if self.secret_access_key is not None:
            props["s3.secret-access-key"] = self.secret_access_key.get_secret_value()
        if self.session_token is not None:
            props["s3.session-token"] = self.session_token.get_secret_value()
        if not self.path_style:
            props["s3.force-virtual-addressing"] = "true"
        return props


class AzureSettings(BaseModel):
    """Credentials and endpoint for an ``abfs://container@account.dfs.core.windows.net/prefix`` warehouse."""

    account_name: str = Field(
        default="",
        description="Storage account. Empty means the account in the warehouse URI (`container@ACCOUNT.dfs...`).",
    )
    account_key: SecretStr | None = Field(default=None, description="Shared account key (a secret).")
    sas_token: SecretStr | None = Field(default=None, description="A SAS token instead of the key (a secret).")
    connection_string: SecretStr | None = Field(
        default=None,
        description=(
            "A storage connection string (a secret); its AccountName, AccountKey, SharedAccessSignature and "
            "BlobEndpoint fill the fields left empty."
        ),
    )
    blob_endpoint: str = Field(
        default="",
        description=(
            "Blob service URL override, e.g. `http://127.0.0.1:10000/devstoreaccount1` for Azurite. "
            "Empty means `https://<account>.blob.core.windows.net`."
        ),
    )

    def properties(self, warehouse: str) -> dict[str, str]:
        parts = parse_connection_string(self.connection_string.get_secret_value()) if self.connection_string else {}
        account = self.account_name or parts.get("accountname", "") or _account_from_location(warehouse)
        key = self.account_key.get_secret_value() if self.account_key else parts.get("accountkey", "")
        sas = self.sas_token.get_secret_value() if self.sas_token else parts.get("sharedaccesssignature", "")
        endpoint = self.blob_endpoint or parts.get("blobendpoint", "")
        props: dict[str, str] = {}
        if account:
            props["adls.account-name"] = account
        if key:
            props["adls.account-key"] = key
        if sas:
            # pyarrow's AzureFileSystem appends the token to each URL as given, so it needs its "?".
            props["adls.sas-token"] = "?" + sas.lstrip("?")
        if endpoint:
            url = urlsplit(endpoint)
            # Azurite and other emulators answer blob and DFS calls on the same host.
            for service in ("blob", "dfs"):
                props[f"adls.{service}-storage-authority"] = url.netloc
                props[f"adls.{service}-storage-scheme"] = url.scheme or "https"
        return props


def parse_connection_string(value: str) -> dict[str, str]:
    """``Key=Value;...`` → lower-cased keys; ``UseDevelopmentStorage=true`` means Azurite's well-known account."""
    parts: dict[str, str] = {}
    for item in value.split(";"):
        key, sep, val = item.strip().partition("=")
        if sep:
            parts[key.strip().lower()] = val.strip()
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        parts.setdefault("accountname", "devstoreaccount1")
        parts.setdefault("accountkey", AZURITE_ACCOUNT_KEY)
        parts.setdefault("blobendpoint", "http://127.0.0.1:10000/devstoreaccount1")
    return parts


# Azurite's documented development account key (public, not a secret).
AZURITE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _account_from_location(location: str) -> str:
    netloc = urlsplit(location).netloc
    if "@" not in netloc:
        return ""
    return netloc.split("@", 1)[1].split(".", 1)[0]


class LakehouseSettings(BaseModel):
    """The Iceberg catalog and the warehouse every write goes to.

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
            "REST catalog: its base URL (`https://catalog.example.com/api/catalog`). "
            "Empty means `sqlite:///<home>/catalog.db`."
        ),
    )
    warehouse: str = Field(
        default="",
        description=(
            "Root of table data: `file:///abs/path`, `s3://bucket/prefix` or "
            "`abfs://container@account.dfs.core.windows.net/prefix`. Empty means `file://<absolute home>/warehouse`. "
            "Parquet output goes under `<warehouse>/parquet/`."
        ),
    )
    catalog_warehouse: str = Field(
        default="",
        description=(
            "REST catalog only: the warehouse name (or location) the server knows, sent as `warehouse`. "
            "Empty means `warehouse`."
        ),
    )
    catalog_credential: SecretStr | None = Field(
        default=None,
        description="REST catalog only: OAuth2 client credentials `client_id:client_secret` (a secret).",
    )
    catalog_token: SecretStr | None = Field(
        default=None, description="REST catalog only: a bearer token sent with every request (a secret)."
    )
    catalog_oauth2_uri: str = Field(
        default="",
        description=(
            "REST catalog only: the OAuth2 token endpoint for `catalog_credential`. "
            "Empty means `<catalog_uri>/v1/oauth/tokens`."
        ),
    )
    s3: S3Settings = Field(default_factory=S3Settings, description="S3 warehouse credentials and endpoint.")
    azure: AzureSettings = Field(
        default_factory=AzureSettings, description="Azure Blob / ADLS warehouse credentials and endpoint."
    )
    merge_strategy: MergeStrategy = Field(
        default=DEFAULT_MERGE_STRATEGY,
        description=(
            "How an Incremental merge replaces changed rows of an unpartitioned Iceberg table: "
            "`copy_on_write` rewrites each data file holding a changed key; `merge_on_read` keeps the "
            "files and adds position-delete files (Iceberg v2) for the old rows, which is much cheaper "
            "for changes spread over the table; the delete files pile up until a full refresh or resync "
            "replaces the table."
        ),
    )
    properties: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description=(
            "Extra pyiceberg catalog and FileIO properties, passed through unchanged and applied last "
            "(e.g. `s3.connect-timeout`). Put secrets in the dedicated fields, which are masked."
        ),
    )

    @field_serializer("properties", when_used="json")
    def _mask_properties(self, value: dict[str, str]) -> dict[str, str]:
        # Passthrough properties may hold a secret despite the advice; JSON (APIs, logs) never shows it.
        return {k: "**********" if any(w in k.lower() for w in _SECRET_WORDS) else v for k, v in value.items()}

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

    @field_validator("warehouse")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in WAREHOUSE_SCHEMES:
            raise ValueError(
                f"warehouse: use one of {', '.join(s + '://' for s in WAREHOUSE_SCHEMES)} "
                "(a local directory is `file:///absolute/path`)"
            )
        return value

    @model_validator(mode="after")
    def _rest_needs_http(self) -> LakehouseSettings:
        if self.catalog_type == "rest" and not self.catalog_uri.startswith(("http://", "https://")):
            raise ValueError("catalog_uri: the REST catalog needs its http(s) base URL")
        return self

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

    @property
    def warehouse_scheme(self) -> str:
        return urlsplit(self.warehouse).scheme

    def file_io_properties(self) -> dict[str, str]:
        """pyiceberg FileIO properties for the warehouse (secrets revealed: never log them)."""
        props = {"py-io-impl": FILE_IO}
        scheme = self.warehouse_scheme
        if scheme in S3_SCHEMES or self.s3 != S3Settings():
            props.update(self.s3.properties())
        if scheme in AZURE_SCHEMES or self.azure != AzureSettings():
            props.update(self.azure.properties(self.warehouse))
        props.update(self.properties)
        return props

    def catalog_properties(self) -> dict[str, str]:
        """Every pyiceberg catalog property (secrets revealed: never log them)."""
        props = self.file_io_properties()
        props["uri"] = self.catalog_uri
        props["warehouse"] = self.warehouse
        if self.catalog_type == "rest":
            props["warehouse"] = self.catalog_warehouse or self.warehouse
            if self.catalog_token is not None:
                props["token"] = self.catalog_token.get_secret_value()
            if self.catalog_credential is not None:
                props["credential"] = self.catalog_credential.get_secret_value()
                token_url = f"{self.catalog_uri.rstrip('/')}/v1/oauth/tokens"
                props["oauth2-server-uri"] = self.catalog_oauth2_uri or token_url
        props.update(self.properties)
        return props

    def environment(self, prefix: str) -> dict[str, str]:
        """These settings as environment variables under ``prefix`` (e.g. ``TIDEMARK_INGEST__LAKEHOUSE__``),
        secrets revealed, so a child process rebuilds exactly these settings."""
        return {v.name: env_text(setting_at(self, v.path)) for v in self.variables(prefix)}

    def variables(self, prefix: str) -> list[EnvVariable]:
        """The environment variables that rebuild these settings (the set ones), without their values:
        each names its settings path and whether it may hold a secret, so a launcher can pass plain
        values and reference the secrets (see ``tidemark_ingest.launchers.spec``)."""
        return _variables(self, prefix, "")


class EnvVariable(NamedTuple):
    name: str  # TIDEMARK_INGEST__LAKEHOUSE__S3__SECRET_ACCESS_KEY
    path: str  # s3.secret_access_key: where the value lives, relative to the settings object
    secret: bool


# Plain strings that may still carry a secret: a SQL catalog URL may hold a password, and passthrough
# properties may hold a key despite the advice.
_MAY_HOLD_SECRETS = frozenset({"catalog_uri", "properties"})


def _variables(model: BaseModel, prefix: str, path: str) -> list[EnvVariable]:
    found: list[EnvVariable] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        key, where = f"{prefix}{name.upper()}", f"{path}{name}"
        if value is None or value == {}:
            # Unset: the default rebuilds it. An empty `properties` would otherwise be a secret reference
            # that a Kubernetes worker must find in some Secret although it holds nothing.
            continue
        if isinstance(value, BaseModel):
            found.extend(_variables(value, f"{key}__", f"{where}."))
        else:
            found.append(EnvVariable(key, where, isinstance(value, SecretStr) or name in _MAY_HOLD_SECRETS))
    return found


def setting_at(model: BaseModel, path: str) -> Any:
    """The value at a dotted ``path`` of settings (``lakehouse.s3.secret_access_key``)."""
    value: Any = model
    for part in path.split("."):
        value = getattr(value, part)
    return value


def env_text(value: Any) -> str:
    """A setting as pydantic-settings reads it back from the environment (secrets revealed)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
