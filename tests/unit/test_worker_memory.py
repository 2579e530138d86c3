"""The worker allocates Arrow memory with jemalloc, which hands freed pages back to the system."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from tidemark_ingest.worker.memory import use_jemalloc

pytestmark = pytest.mark.unit


@pytest.fixture
def restored_pool() -> Iterator[None]:
    before = pa.default_memory_pool()
    yield
    pa.set_memory_pool(before)


@pytest.mark.usefixtures("restored_pool")
def test_the_worker_switches_arrow_to_jemalloc() -> None:
    use_jemalloc()
    assert pa.default_memory_pool().backend_name == "jemalloc"
    assert pa.array(range(1000)).sum().as_py() == 499500
