"""Salesforce field types (``describe``) → Arrow.

Numbers with a precision in their describe (currency, percent, double with scale) are exact
decimals of that precision and scale; ``int`` is int64; compound fields (address, location)
and ``base64`` are left out: their parts are fields of their own, and SOQL cannot read
base64 in bulk.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

SKIPPED = {"address", "location", "base64"}
CURSOR_TYPES = {"datetime", "date"}


def arrow_type(field: dict[str, Any]) -> pa.DataType:
    kind = str(field.get("type", "string"))
    if kind == "boolean":
        return pa.bool_()
    if kind in {"int", "long"}:
        return pa.int64()
    if kind in {"double", "currency", "percent"}:
        precision, scale = int(field.get("precision") or 0), int(field.get("scale") or 0)
        if 0 < precision <= 38 and scale <= precision:
            return pa.decimal128(precision, scale)
        return pa.float64()
    if kind == "date":
        return pa.date32()
    if kind == "datetime":
        return pa.timestamp("us", tz="UTC")
    return pa.string()
