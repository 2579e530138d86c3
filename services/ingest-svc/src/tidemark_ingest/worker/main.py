"""``tidemark-worker run RUN_ID`` (also ``python -m tidemark_ingest.worker run RUN_ID``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid

from tidemark.logs import configure_logging, log_context
from tidemark_ingest.settings import WorkerSettings
from tidemark_ingest.worker.memory import use_jemalloc
from tidemark_ingest.worker.run import run_worker


def main(argv: list[str] | None = None) -> None:
    began = time.time()
    parser = argparse.ArgumentParser(prog="tidemark-worker", description="Load one run's streams.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="do the run RUN_ID recorded in ingest-svc's database")
    run.add_argument("run_id", type=uuid.UUID)
    args = parser.parse_args(argv)
    settings = WorkerSettings()
    configure_logging(settings.log_level, settings.log_format)
    # Every line this process logs carries the run id, from any thread (they copy the context).
    with log_context(run_id=str(args.run_id)):
        use_jemalloc()
        try:
            startup = None if settings.launched_at is None else max(0.0, began - settings.launched_at)
            code = asyncio.run(run_worker(settings, args.run_id, startup))
        except Exception:
            # Only infrastructure failures get here (the run's own errors are recorded on the run);
            # log them structured, and let the exit code tell the supervisor.
            logging.getLogger("tidemark_ingest.worker").exception("worker crashed")
            code = 1
    sys.exit(code)
