"""Files in an Azure Blob container, through the same filesystem layer as an Azure warehouse
(:mod:`tidemark.lakehouse.storage`): account key, SAS token or connection string."""

from __future__ import annotations

from typing import ClassVar

from pyarrow import fs as pafs
from pydantic import Field, SecretStr, model_validator

from tidemark.connectors.files.config import FilesConfig
from tidemark.connectors.files.source import FileSource
from tidemark.connectors.sql.errors import ErrorRule
from tidemark.errors import FailureKind
from tidemark.lakehouse.settings import AzureSettings, parse_connection_string
from tidemark.lakehouse.storage import TidemarkFileIO


class AzureBlobConfig(FilesConfig):
    container: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
                           description="Container name.")
    account_name: str = Field(default="", description="Storage account; may come from `connection_string`.")
    account_key: SecretStr | None = Field(default=None, description="Shared account key.")
    sas_token: SecretStr | None = Field(
        default=None, description="SAS token (needs list and read permissions on the container)."
    )
    connection_string: SecretStr | None = Field(
        default=None,
        description="Storage connection string; its AccountName, AccountKey, SharedAccessSignature and "
                    "BlobEndpoint fill the fields left empty.",
    )
    blob_endpoint: str = Field(
        default="",
        description="Blob service URL, e.g. `http://127.0.0.1:10000/devstoreaccount1` for Azurite; "
                    "empty: `https://<account>.blob.core.windows.net`.",
    )

    @model_validator(mode="after")
    def _has_account(self) -> AzureBlobConfig:
        from_string = (parse_connection_string(self.connection_string.get_secret_value())
                       if self.connection_string else {})
        if not self.account_name and not from_string.get("accountname"):
            raise ValueError("account_name is required (or a connection_string that names the account)")
        return self

    def endpoints(self) -> dict[str, str]:
        if self.blob_endpoint:
            return {"blob_endpoint": self.blob_endpoint}
        parts = parse_connection_string(self.connection_string.get_secret_value()) if self.connection_string else {}
        return {"connection_string": parts["blobendpoint"]} if parts.get("blobendpoint") else {}

    def account(self) -> str:
        if self.account_name:
            return self.account_name
        assert self.connection_string is not None  # the validator guarantees one of them
        return parse_connection_string(self.connection_string.get_secret_value())["accountname"]


AZURE_ERRORS = (
    ErrorRule(("containernotfound", "container does not exist"), FailureKind.CONFIG,
              "{location}: the container does not exist (check `container`)", "container"),
    ErrorRule(("authenticationfailed", "authorizationfailure", "server failed to authenticate",
               "signature fields not well formed", "sas"), FailureKind.CONFIG,
              "{location}: the store refused the credentials (check the account key, SAS token or connection "
              "string)", "account_key"),
    ErrorRule(("authorizationpermissionmismatch", "not authorized", "403"), FailureKind.CONFIG,
              "{location}: access denied; the credentials need list and read permissions on the container",
              "sas_token"),
    ErrorRule(("couldn't connect", "could not connect", "connection refused", "resolve host", "timed out",
               "curl"), FailureKind.TRANSIENT,
              "{location}: cannot reach the store ({detail}); check `blob_endpoint` and the network", "blob_endpoint"),
)


class AzureBlobSource(FileSource):
    type_name = "azure_blob"
    title = "Azure Blob Storage"
    config_model = AzureBlobConfig
    config: AzureBlobConfig
    error_rules: ClassVar[tuple[ErrorRule, ...]] = AZURE_ERRORS

    def open_filesystem(self) -> pafs.FileSystem:
        c = self.config
        settings = AzureSettings(account_name=c.account(), account_key=c.account_key, sas_token=c.sas_token,
                                 connection_string=c.connection_string, blob_endpoint=c.blob_endpoint)
        return TidemarkFileIO(settings.properties("")).fs_by_scheme("abfs", None)

    def base(self) -> str:
        return self.config.container

    def location(self) -> str:
        root = self.config.root()
        where = f"azure://{self.config.account()}/{self.config.container}"
        return f"{where}/{root}" if root else where
