import asyncio

from tidemark.api.serve import service_main
from tidemark.db import create_engine, session_factory
from tidemark_connector.app import DEFINITION, create_app
from tidemark_connector.crypto import SecretBox, load_secret_key
from tidemark_connector.rotation import rotate_secrets
from tidemark_connector.settings import ConnectorSettings


async def rotate_keys(settings: ConnectorSettings) -> None:
    """Re-encrypt every stored secret with ``secret_key``; exit 1 unless every one now is."""
    box = SecretBox(await asyncio.to_thread(load_secret_key, settings), settings.previous_secret_keys)
    engine = create_engine(settings.database)
    try:
        report = await rotate_secrets(session_factory(engine), box)
    finally:
        await engine.dispose()
    print(f"key rotation: {report.summary()}", flush=True)
    if not report.complete:
        raise SystemExit(1)


def main() -> None:
    service_main(DEFINITION, ConnectorSettings, create_app, commands={
        "rotate-keys": ("re-encrypt every stored connection secret with secret_key (safe to repeat, "
                        "safe beside running replicas); exit 1 if any is left under another key", rotate_keys),
    })
