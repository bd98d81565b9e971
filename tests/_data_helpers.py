"""Helpers for the data-layer tests: release files, archives, a local HTTP server."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

LATEST_RATINGS = (
    "userId,movieId,rating,timestamp\n"
    "1,10,4.0,964982703\n"
    "1,30,3.5,964981247\n"
    "7,10,0.5,964982224\n"
    "3,20,5.0,964983815\n"
    "3,10,2.0,964982931\n"
)
LATEST_MOVIES = (
    "movieId,title,genres\n"
    "10,Toy Story (1995),Adventure|Animation|Children\n"
    '20,"American President, The (1995)",Comedy|Drama|Romance\n'
    "30,Ghost: The Return (2001),(no genres listed)\n"
    "40,Never Rated (1999),Drama\n"
)


def write_files(folder: Path, files: dict[str, str | bytes], encoding: str = "utf-8") -> Path:
    """Write ``name → text or bytes`` into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode(encoding)
        (folder / name).write_bytes(data)
    return folder


def make_zip(
    files: dict[str, str | bytes],
    *,
    folder: str = "ml-latest-small",
    extra: dict[str, bytes] | None = None,
    symlinks: dict[str, str] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A zip with ``files`` under ``folder/`` plus ``extra`` members named verbatim and
    ``symlinks`` (member name → link target) stored as Unix symbolic links."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        if folder:
            zf.writestr(f"{folder}/", b"")
        for name, content in files.items():
            data = content if isinstance(content, bytes) else content.encode("utf-8")
            zf.writestr(f"{folder}/{name}" if folder else name, data)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
        for name, link_target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # S_IFLNK | rwx
            zf.writestr(info, link_target)
    return buffer.getvalue()


def md5_line(data: bytes, name: str) -> bytes:
    return f"{hashlib.md5(data).hexdigest()}  {name}\n".encode()


@dataclass
class ArchiveServer:
    """State of the test server: what it serves and how it misbehaves.

    ``drop_after``/``drops_left``: send only that many body bytes, then cut the connection,
    for the next ``drops_left`` responses to a zip. ``honour_range=False`` answers every
    request with the whole file (as servers without Range support do).
    """

    files: dict[str, bytes]
    url: str = ""
    drop_after: int = 0
    drops_left: int = 0
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def _handler(state: ArchiveServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # keep test output clean
            pass

        def do_GET(self):
            name = self.path.lstrip("/")
            range_header = self.headers.get("Range")
            state.requests.append((name, range_header))
            if name not in state.files:
                self.send_error(404, "Not Found")
                return
            data = state.files[name]
            etag = '"' + hashlib.md5(data).hexdigest() + '"'
            start = 0
            if_range = self.headers.get("If-Range")
            if range_header and state.honour_range and (if_range in (None, etag)):
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.end_headers()
            if name.endswith(".zip") and state.drops_left > 0 and state.drop_after < len(body):
                state.drops_left -= 1
                self.wfile.write(body[: state.drop_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def serve(files: dict[str, bytes]) -> Iterator[ArchiveServer]:
    """Serve ``files`` (path → bytes) on 127.0.0.1 at an ephemeral port."""
    state = ArchiveServer(files)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def als_rmse(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_users: int,
    n_items: int,
    rank: int,
    reg: float = 5.0,
    iterations: int = 10,
    seed: int = 0,
) -> float:
    """Test RMSE of a plain NumPy ALS with biases (rank 0: biases only).

    Slow and obvious on purpose: per user, solve the ridge system for [b_u, u] given items.
    """
    users, items, ratings = train
    mean = ratings.mean()
    rng = np.random.default_rng(seed)
    user_bias, item_bias = np.zeros(n_users), np.zeros(n_items)
    user_factors = rng.normal(0, 0.1, (n_users, rank))
    item_factors = rng.normal(0, 0.1, (n_items, rank))
    by_user = [np.flatnonzero(users == u) for u in range(n_users)]
    by_item = [np.flatnonzero(items == i) for i in range(n_items)]

    def solve(rows, other_factors, other_bias, other_index):
        design = np.hstack([np.ones((len(rows), 1)), other_factors[other_index[rows]]])
        target = ratings[rows] - mean - other_bias[other_index[rows]]
        penalty = reg * np.eye(rank + 1)
        penalty[0, 0] = 1e-3  # the bias is barely regularised
        return np.linalg.solve(design.T @ design + penalty, design.T @ target)

    for _ in range(iterations):
        for u, rows in enumerate(by_user):
            if len(rows):
                solution = solve(rows, item_factors, item_bias, items)
                user_bias[u], user_factors[u] = solution[0], solution[1:]
        for i, rows in enumerate(by_item):
            if len(rows):
                solution = solve(rows, user_factors, user_bias, users)
                item_bias[i], item_factors[i] = solution[0], solution[1:]
    test_users, test_items, test_ratings = test
    predicted = (
        mean
        + user_bias[test_users]
        + item_bias[test_items]
        + np.sum(user_factors[test_users] * item_factors[test_items], axis=1)
    )
    return float(np.sqrt(np.mean((predicted - test_ratings) ** 2)))
