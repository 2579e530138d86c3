"""How Tidemark's Kafka clients are built for secured clusters: SSL and SASL_SSL get a verifying SSL context
(aiokafka refuses SSL without one), from the system's CAs or a private CA file such as a mounted Secret."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import certifi
import pytest
from pydantic import SecretStr

from tidemark.bus.kafka import KafkaBus, client_options
from tidemark.events import Topic
from tidemark.settings import KafkaSettings
from tidemark_cli.embedded import prepare

pytestmark = pytest.mark.unit


def test_plaintext_has_no_ssl_context() -> None:
    opts = client_options(KafkaSettings(bootstrap_servers="kafka:9092"), "tidemark-test")
    assert opts["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in opts


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_ssl_protocols_verify_the_brokers(protocol: str) -> None:
    settings = KafkaSettings(
        bootstrap_servers="b-1.kafka.example.com:9096", security_protocol=protocol,  # type: ignore[arg-type]
        sasl_mechanism="SCRAM-SHA-512", sasl_username="tidemark", sasl_password=SecretStr("pw"),
    )
    opts = client_options(settings, "tidemark-test")
    context = opts["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert opts["sasl_plain_password"] == "pw"


def test_a_private_ca_file_is_what_the_context_trusts(tmp_path: Path) -> None:
    bundle = Path(certifi.where())
    ca = tmp_path / "ca.crt"
    ca.write_text(bundle.read_text())
    settings = KafkaSettings(security_protocol="SSL", ssl_cafile=ca)
    context = client_options(settings, "tidemark-test")["ssl_context"]
    expected = ssl.create_default_context(cafile=str(bundle)).cert_store_stats()["x509_ca"]
    assert context.cert_store_stats()["x509_ca"] == expected > 0


def test_a_missing_ca_file_fails_at_start_up_naming_it(tmp_path: Path) -> None:
    settings = KafkaSettings(security_protocol="SSL", ssl_cafile=tmp_path / "absent.crt")
    with pytest.raises(FileNotFoundError):
        client_options(settings, "tidemark-test")


async def test_consumers_use_the_fetch_wait_and_the_embedded_platform_shortens_it_for_its_local_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The local broker (tansu) holds a fetch for the whole wait even when a message arrives: the
    # embedded platform asks for a short one, so each event's hop takes ~0.1 s, not up to 0.5 s.
    local = prepare(tmp_path, "127.0.0.1", 8000, "127.0.0.1:9092", local_broker=True).kafka
    cluster = prepare(tmp_path, "127.0.0.1", 8000, "kafka:9092").kafka
    assert (local.fetch_max_wait_ms, cluster.fetch_max_wait_ms) == (100, 500)

    built: dict[str, Any] = {}

    class RefusedError(Exception):
        pass

    class Consumer:
        def __init__(self, *topics: str, **options: Any) -> None:
            built.update(options)

        async def start(self) -> None:
            raise RefusedError

        async def stop(self) -> None:
            pass

    monkeypatch.setattr("tidemark.bus.kafka.AIOKafkaConsumer", Consumer)
    bus = KafkaBus(local, client_id="tidemark-test")
    bus._topics_ready = True
    with pytest.raises(RefusedError):
        await bus._consume("tidemark-test.fetch", [Topic.RUNS], lambda envelope: None)  # type: ignore[arg-type, return-value]
    assert built["fetch_max_wait_ms"] == 100
