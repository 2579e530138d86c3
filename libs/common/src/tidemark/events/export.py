"""Export every event contract as JSON Schema (``make contracts``), for other platforms."""

from __future__ import annotations

import json
from pathlib import Path

from tidemark.events.contracts import EVENT_TYPES
from tidemark.events.envelope import Envelope


def export_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    envelope = Envelope.model_json_schema()
    path = out / "envelope.schema.json"
    path.write_text(json.dumps(envelope, indent=2, sort_keys=True) + "\n")
    written.append(path)
    for event_type, model in sorted(EVENT_TYPES.items()):
        schema = model.model_json_schema()
        schema["title"] = event_type
        schema["x-tidemark"] = {
            "type": event_type, "topic": model.topic.value, "schema_version": model.schema_version
        }
        path = out / f"{event_type}.v{model.schema_version}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
