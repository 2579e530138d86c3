"""Building blocks for request bodies whose errors name the exact field.

``field_errors`` turns rules that look at several fields at once (a model validator) into a
pydantic ``ValidationError`` whose errors carry their own locations, such as
``("streams", 1, "cursor_field")``. Raised inside a validator, pydantic keeps those locations
and prefixes the enclosing ones, so the problem handler reports ``streams.1.cursor_field``
rather than ``body``.

``Omittable[X]`` is the type of a field an update body may leave out but must not set to
``null``: leaving it out keeps the stored value, and ``null`` is a 422 naming the field. The
OpenAPI document shows the field as plain ``X``, not nullable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldError:
    loc: Loc
    message: str
    type: str = "value_error"
    input: Any = None


def field_errors(title: str, errors: Iterable[FieldError]) -> ValidationError:
    """One ``ValidationError`` holding every error, each at its own location in the model."""
    return ValidationError.from_exception_data(
        title,
        [
            # The message is used as is (no context), so braces in user input stay literal.
            InitErrorDetails(type=PydanticCustomError(e.type, e.message), loc=e.loc, input=e.input)
            for e in errors
        ],
    )


NOT_NULL_MESSAGE = "May be left out to keep the current value, but must not be null."


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("null_not_allowed", NOT_NULL_MESSAGE)
    return value


class _NotNullInSchema:
    """Drop the ``null`` branch from the field's JSON Schema (``drop_null_defaults`` drops its default)."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        generated = handler(schema)
        branches = generated.get("anyOf")
        if isinstance(branches, list):
            rest = [b for b in branches if b != {"type": "null"}]
            if len(rest) == 1:
                generated = {**{k: v for k, v in generated.items() if k != "anyOf"}, **rest[0]}
        return generated


T = TypeVar("T")
# The Python type stays `X | None` (None meaning "left out"); only an explicit null is refused.
Omittable = Annotated[T | None, BeforeValidator(_not_null), _NotNullInSchema()]


def drop_null_defaults(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` for update bodies: an omittable field has no ``null`` default to show."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None and not _admits_null(prop):
            del prop["default"]


def _admits_null(prop: dict[str, Any]) -> bool:
    kinds = prop.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds):
        return True
    return any(_admits_null(b) for key in ("anyOf", "oneOf") for b in prop.get(key, []))
