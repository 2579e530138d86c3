"""A pipeline's streams and destination as the API accepts them, and the one conversion to the
event contracts' wire models.

The API models are strict (an unknown field is a 422 naming it) and carry every rule a user's
input must pass: patterns, lengths, the namespace and prefix rules. The wire models in
:mod:`tidemark.events.contracts` check types only and ignore unknown fields, so a consumer of
``run.requested`` never drops an event over style. Field descriptions come from the wire models,
so the API and the contracts describe a field the same way.

The API models keep the wire models' class names (``StreamSpec``, ``DestinationSpec``,
``PartitionField``) so the OpenAPI document's schema names stay as they were; in this module the
wire models are ``wire.*``. Everything that turns one into the other is at the end of this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt
from pydantic_core import PydanticCustomError

from tidemark.events import SyncMode
from tidemark.events import contracts as wire

if TYPE_CHECKING:
    from tidemark_orchestrator.models import Pipeline

# Names every catalog and reader accepts as they are, and that are safe as path segments.
NAMESPACE_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"
NAMESPACE_MAX = 128
TABLE_PREFIX_PATTERN = r"^[a-z0-9_]*$"
TABLE_PREFIX_MAX = 64
NAMESPACE_RULE = (
    f"A namespace is lowercase letters, digits and `_`, with `.` between nested levels "
    f"(e.g. `raw` or `raw.sales`), at most {NAMESPACE_MAX} characters."
)
TABLE_PREFIX_RULE = f"A table prefix is lowercase letters, digits and `_`, at most {TABLE_PREFIX_MAX} characters."
TRANSFORM_PATTERN = r"^(identity|year|month|day|hour|bucket\[[1-9][0-9]{0,5}\]|truncate\[[1-9][0-9]{0,5}\])$"


def _matching(pattern: str, limit: int, rule: str, error_type: str) -> AfterValidator:
    # One clear message that states the rule, instead of pydantic's "should match pattern '…'".
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if len(value) > limit or not compiled.match(value):
            raise PydanticCustomError(error_type, rule)
        return value

    return AfterValidator(check)


def _about(model: type[BaseModel], name: str) -> str | None:
    return model.model_fields[name].description


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ColumnName = Annotated[str, Field(min_length=1)]


class PartitionField(_Strict):
    column: str = Field(min_length=1, description=_about(wire.PartitionField, "column"))
    transform: str = Field(default="identity", pattern=TRANSFORM_PATTERN,
                           description=_about(wire.PartitionField, "transform"))


class StreamSpec(_Strict):
    name: str = Field(min_length=1, description=_about(wire.StreamSpec, "name"))
    sync_mode: SyncMode = Field(default=SyncMode.FULL_REFRESH, description=_about(wire.StreamSpec, "sync_mode"))
    cursor_field: str | None = Field(default=None, min_length=1, description=_about(wire.StreamSpec, "cursor_field"))
    primary_key: list[ColumnName] = Field(default_factory=list, description=_about(wire.StreamSpec, "primary_key"))
    columns: list[ColumnName] | None = Field(default=None, description=_about(wire.StreamSpec, "columns"))
    lookback: StrictInt | None = Field(default=None, ge=0, description=_about(wire.StreamSpec, "lookback"))
    partition: list[PartitionField] | None = Field(default=None, description=_about(wire.StreamSpec, "partition"))


class DestinationSpec(_Strict):
    kind: Literal["iceberg", "parquet"] = Field(default="iceberg", description=_about(wire.DestinationSpec, "kind"))
    namespace: Annotated[str, _matching(NAMESPACE_PATTERN, NAMESPACE_MAX, NAMESPACE_RULE, "namespace_invalid")] = (
        Field(
            default="tidemark",
            description=f"{_about(wire.DestinationSpec, 'namespace')} {NAMESPACE_RULE}",
            json_schema_extra={"pattern": NAMESPACE_PATTERN, "maxLength": NAMESPACE_MAX},
        )
    )
    table_prefix: Annotated[
        str, _matching(TABLE_PREFIX_PATTERN, TABLE_PREFIX_MAX, TABLE_PREFIX_RULE, "table_prefix_invalid")
    ] = Field(
        default="",
        description=f"{_about(wire.DestinationSpec, 'table_prefix')} {TABLE_PREFIX_RULE}",
        json_schema_extra={"pattern": TABLE_PREFIX_PATTERN, "maxLength": TABLE_PREFIX_MAX},
    )


# --- the conversion, API → stored → wire -------------------------------------------------------------


def stored(body: StreamSpec | DestinationSpec) -> dict[str, Any]:
    """What a pipeline row keeps: the API model's JSON, which the wire model reads as it is."""
    return body.model_dump(mode="json")


def to_wire_streams(streams: Sequence[StreamSpec | Mapping[str, Any]]) -> list[wire.StreamSpec]:
    """API bodies or stored rows → the wire model the checks and ``run.requested`` use."""
    return [wire.StreamSpec.model_validate(stored(s) if isinstance(s, StreamSpec) else s) for s in streams]


def to_wire_destination(destination: DestinationSpec | Mapping[str, Any]) -> wire.DestinationSpec:
    raw = stored(destination) if isinstance(destination, DestinationSpec) else destination
    return wire.DestinationSpec.model_validate(raw)


def pipeline_spec(pipeline: Pipeline) -> wire.PipelineSpec:
    """The pipeline as ``run.requested`` carries it, frozen at request time."""
    return wire.PipelineSpec(
        pipeline_id=pipeline.id,
        name=pipeline.name,
        connection_id=pipeline.connection_id,
        streams=to_wire_streams(pipeline.streams),
        destination=to_wire_destination(pipeline.destination),
    )
