"""Files in an S3 bucket, through the same filesystem layer as an S3 warehouse (:mod:`tidemark.lakehouse.storage`)."""

from __future__ import annotations

from typing import ClassVar

from pyarrow import fs as pafs
from pydantic import Field, SecretStr

from tidemark.connectors.files.config import FilesConfig
from tidemark.connectors.files.source import FileSource
from tidemark.connectors.sql.errors import ErrorRule
from tidemark.errors import FailureKind
from tidemark.lakehouse.settings import S3Settings
from tidemark.lakehouse.storage import TidemarkFileIO


class S3Config(FilesConfig):
    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$",
                        description="Bucket name.")
    region: str = Field(default="us-east-1", description="Bucket region.")
    endpoint: str = Field(
        default="", description="Endpoint of an S3-compatible store, e.g. `http://127.0.0.1:9000`; empty: AWS."
    )
    path_style: bool = Field(default=True, description="With `endpoint`: path-style addressing (`endpoint/bucket`).")
    access_key_id: str = Field(
        default="", description="Access key id; empty: the default AWS credential chain (env, profile, role)."
    )
    secret_access_key: SecretStr | None = Field(default=None, description="Secret access key.")
    session_token: SecretStr | None = Field(default=None, description="Session token of temporary credentials.")
    role_arn: str = Field(default="", description="Role to assume (with the credentials above, or the default chain).")
    role_session_name: str = Field(default="tidemark", description="Session name when assuming `role_arn`.")

    def endpoints(self) -> dict[str, str]:
        return {"endpoint": self.endpoint} if self.endpoint else {}


S3_ERRORS = (
    ErrorRule(("no_such_bucket", "nosuchbucket", "bucket does not exist"), FailureKind.CONFIG,
              "{location}: the bucket does not exist (check `bucket` and `region`)", "bucket"),
    ErrorRule(("invalidaccesskeyid", "access key id you provided does not exist"), FailureKind.CONFIG,
              "{location}: the access key id is unknown to the store (check `access_key_id`)", "access_key_id"),
    ErrorRule(("signaturedoesnotmatch", "signature we calculated does not match"), FailureKind.CONFIG,
              "{location}: the secret access key is wrong (check `secret_access_key`)", "secret_access_key"),
    ErrorRule(("access_denied", "accessdenied", "access denied", "forbidden"), FailureKind.CONFIG,
              "{location}: access denied; the credentials need s3:ListBucket and s3:GetObject on it",
              "access_key_id"),
    ErrorRule(("couldn't connect", "could not connect", "connection refused", "resolve host", "timed out",
               "curlcode"), FailureKind.TRANSIENT,
              "{location}: cannot reach the store ({detail}); check `endpoint` and the network", "endpoint"),
)


class S3Source(FileSource):
    type_name = "s3"
    title = "Amazon S3"
    config_model = S3Config
    config: S3Config
    error_rules: ClassVar[tuple[ErrorRule, ...]] = S3_ERRORS

    def open_filesystem(self) -> pafs.FileSystem:
        c = self.config
        props = S3Settings(endpoint=c.endpoint, region=c.region, access_key_id=c.access_key_id,
                           secret_access_key=c.secret_access_key, session_token=c.session_token,
                           path_style=c.path_style).properties()
        if c.role_arn:
            props["s3.role-arn"] = c.role_arn
            props["s3.role-session-name"] = c.role_session_name
        # Connection timeouts keep a wrong endpoint from hanging a check for minutes.
        props.setdefault("s3.connect-timeout", "10")
        return TidemarkFileIO(props).fs_by_scheme("s3", c.bucket)

    def base(self) -> str:
        return self.config.bucket

    def location(self) -> str:
        root = self.config.root()
        return f"s3://{self.config.bucket}/{root}" if root else f"s3://{self.config.bucket}"
