"""Real server processes for tests: started on 127.0.0.1 in their own process group, waited
for until a URL answers, and stopped with every worker they forked."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(
    command: Sequence[str],
    ready_url: str,
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120,
) -> Iterator[subprocess.Popen]:
    """Run ``command`` until the block ends; fails the test with the server's output if it
    exits, or ``ready_url`` does not answer within ``timeout_s``."""
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            start_new_session=True,  # its own process group: the workers are stopped with it
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    with urllib.request.urlopen(ready_url, timeout=2):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        state = "exited" if server.poll() is not None else "did not answer"
                        pytest.fail(f"{command[0]} {state} ({ready_url}):\n{log_path.read_text()}")
                    time.sleep(0.5)
            yield server
        finally:
            _stop_group(server)


def _stop_group(server: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM to the server's process group, SIGKILL when it outlives ``timeout_s``; a group
    already gone (the server died before its test) is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
