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
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

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
        if len(value) > limit or not compiled.fullmatch(value):  # fullmatch: `$` would let a final newline in
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


# --- where a worker runs (the Kubernetes launcher) ---------------------------------------------------

QUANTITY_RULE = "A Kubernetes quantity: digits with an optional fraction and unit, e.g. `500m`, `2`, `512Mi`, `1.5Gi`."
_UNITS = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
          "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}
LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
LABEL_RULE = ("A label key is an optional DNS prefix and `/`, then at most 63 letters, digits, `-`, `_` or `.`, "
              "starting and ending with a letter or digit; a value is the same (or empty).")
DNS_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
DNS_NAME_RULE = "A Kubernetes name: lowercase letters, digits, `-` and `.`, at most 253 characters."

Quantity = Annotated[str, _matching(wire.QUANTITY_PATTERN, 64, QUANTITY_RULE, "quantity_invalid")]
LabelKey = Annotated[str, _matching(LABEL_KEY_PATTERN, 317, LABEL_RULE, "label_key_invalid")]
LabelValue = Annotated[str, _matching(LABEL_VALUE_PATTERN, 63, LABEL_RULE, "label_value_invalid")]


def quantity_value(text: str) -> float:
    """A quantity's amount (``500m`` → 0.5, ``1Gi`` → 2**30), to compare a request with its limit."""
    match = re.match(r"^([0-9.]+)([eE][0-9]+|[A-Za-z]*)$", text)
    assert match is not None  # checked by the pattern first
    number, unit = match.groups()
    if unit.lower().startswith("e") and unit[1:].isdigit():
        return float(number) * 10.0 ** int(unit[1:])
    return float(number) * _UNITS.get(unit, 1.0)


class ResourceAmounts(_Strict):
    cpu: Quantity | None = Field(default=None, description=_about(wire.ResourceAmounts, "cpu"))
    memory: Quantity | None = Field(default=None, description=_about(wire.ResourceAmounts, "memory"))


class WorkerResources(_Strict):
    requests: ResourceAmounts | None = Field(default=None, description=_about(wire.WorkerResources, "requests"))
    limits: ResourceAmounts | None = Field(default=None, description=_about(wire.WorkerResources, "limits"))

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        # Kubernetes creates the Job but refuses its pod: the run would wait for nothing.
        errors = []
        for name in ("cpu", "memory"):
            request = getattr(self.requests, name) if self.requests else None
            limit = getattr(self.limits, name) if self.limits else None
            if request is not None and limit is not None and quantity_value(request) > quantity_value(limit):
                errors.append(InitErrorDetails(
                    type=PydanticCustomError("request_above_limit", "The request {request} exceeds the limit {limit}.",
                                             {"request": request, "limit": limit}),
                    loc=("requests", name), input=request))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


class Toleration(_Strict):
    key: LabelKey | None = Field(default=None, description=_about(wire.Toleration, "key"))
    operator: Literal["Equal", "Exists"] = Field(default="Equal", description=_about(wire.Toleration, "operator"))
    value: LabelValue | None = Field(default=None, description=_about(wire.Toleration, "value"))
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description=_about(wire.Toleration, "effect"))
    toleration_seconds: StrictInt | None = Field(
        default=None, ge=0, description=_about(wire.Toleration, "toleration_seconds"))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        errors = []
        if self.operator == "Exists" and self.value is not None:
            errors.append(("value", "value_with_exists", "`Exists` matches any value: leave `value` out."))
        if self.key is None and self.operator != "Exists":
            errors.append(("key", "key_required", "Without a `key`, the operator must be `Exists`."))
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            errors.append(("toleration_seconds", "seconds_without_no_execute",
                           "`toleration_seconds` applies to the `NoExecute` effect only."))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, [
                InitErrorDetails(type=PydanticCustomError(kind, text), loc=(field,), input=getattr(self, field))
                for field, kind, text in errors])
        return self


class WorkerOptions(_Strict):
    resources: WorkerResources | None = Field(default=None, description=_about(wire.WorkerOptions, "resources"))
    node_selector: dict[LabelKey, LabelValue] | None = Field(
        default=None, max_length=32, description=f"{_about(wire.WorkerOptions, 'node_selector')} {LABEL_RULE}")
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=32, description=_about(wire.WorkerOptions, "tolerations"))
    service_account: Annotated[str, _matching(DNS_NAME_PATTERN, 253, DNS_NAME_RULE, "name_invalid")] | None = Field(
        default=None, description=f"{_about(wire.WorkerOptions, 'service_account')} {DNS_NAME_RULE}")


WORKER_DOC = ("Where and with what the pipeline's worker runs under the Kubernetes launcher (the local launcher "
              "ignores it): resources, node selector, tolerations, service account. Anything left out falls "
              "back to the launcher's settings.")


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


def stored_worker(worker: WorkerOptions | None) -> dict[str, Any] | None:
    return worker.model_dump(mode="json", exclude_none=True) if worker is not None else None


def pipeline_spec(pipeline: Pipeline) -> wire.PipelineSpec:
    """The pipeline as ``run.requested`` carries it, frozen at request time."""
    return wire.PipelineSpec(
        pipeline_id=pipeline.id,
        name=pipeline.name,
        connection_id=pipeline.connection_id,
        streams=to_wire_streams(pipeline.streams),
        destination=to_wire_destination(pipeline.destination),
        worker=wire.WorkerOptions.model_validate(pipeline.worker) if pipeline.worker else None,
        maintenance=wire.MaintenancePolicy.model_validate(pipeline.maintenance or {}),
    )
