"""Helpers for the data-layer tests: release files, archives, a local HTTP(S) server."""

from __future__ import annotations

import hashlib
import io
import os
import ssl
import struct
import sys
import tempfile
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

# A self-signed certificate for 127.0.0.1 / localhost (valid 2000-2999) and its key, for the
# loopback HTTPS server: the tests download over TLS, as fetch_release does for real, trusting
# it through $SSL_CERT_FILE. A test key, useless anywhere else.
TEST_CERT = """\
-----BEGIN CERTIFICATE-----
MIIB4TCCAYigAwIBAgIUC67yhThsmj6tT+Lmq/9solXFysMwCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZbW92aWVsZW5zLWFscyB0ZXN0IHNlcnZlcjAgFw0wMDAxMDEw
MDAwMDBaGA8yOTk5MTIzMTAwMDAwMFowJDEiMCAGA1UEAwwZbW92aWVsZW5zLWFs
cyB0ZXN0IHNlcnZlcjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABBqsOr+GDIMD
u9MOl4ZoT+7GcWAaBCePCZDZF5IFl47vcEQZCgyfA7rYgyvZEZLxDdtbpvZbVbCJ
6OB0VkSWqSujgZUwgZIwGgYDVR0RBBMwEYcEfwAAAYIJbG9jYWxob3N0MA8GA1Ud
EwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgKEMBMGA1UdJQQMMAoGCCsGAQUFBwMB
MB0GA1UdDgQWBBRc72FHWT+7oFolrpxyL7+8K/eSIzAfBgNVHSMEGDAWgBRc72FH
WT+7oFolrpxyL7+8K/eSIzAKBggqhkjOPQQDAgNHADBEAiA3Bu7YAF2Tmjj0GfnR
0iUznhyYnMTxIWshcrB6H6HMSwIgIpy9cndxSyZLBlTfXeJ8iPIvhau8XMnEYmSR
2NYKJcc=
-----END CERTIFICATE-----
"""
TEST_KEY = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUV1VkaIAdB2Z4dPI
7xrbHGq/yvD/KEspXVOQWSke8vmhRANCAAQarDq/hgyDA7vTDpeGaE/uxnFgGgQn
jwmQ2ReSBZeO73BEGQoMnwO62IMr2RGS8Q3bW6b2W1WwiejgdFZElqkr
-----END PRIVATE KEY-----
"""


def write_test_ca(folder: Path) -> Path:
    """Write :data:`TEST_CERT` into ``folder``; point ``SSL_CERT_FILE`` at the result."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "test-ca.pem"
    path.write_text(TEST_CERT)
    return path


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


def declare_size(archive: bytes, member: str, size: int) -> bytes:
    """``archive`` with ``member``'s uncompressed size rewritten to ``size`` (< 4 GiB) in its
    local header and its central directory entry: a small zip that claims far more."""
    data = bytearray(archive)
    name = member.encode()
    # (signature, offset of the uncompressed size, of the name length, of the name)
    for signature, size_at, length_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        position = data.find(signature)
        while position >= 0:
            (length,) = struct.unpack_from("<H", data, position + length_at)
            if data[position + name_at : position + name_at + length] == name:
                struct.pack_into("<I", data, position + size_at, size)
            position = data.find(signature, position + 4)
    return bytes(data)


def md5_line(data: bytes, name: str) -> bytes:
    return f"{hashlib.md5(data).hexdigest()}  {name}\n".encode()


@dataclass
class ArchiveServer:
    """State of the test server: what it serves and how it misbehaves.

    ``drop_after``/``drops_left``: send only that many body bytes, then cut the connection,
    for the next ``drops_left`` responses to a zip. ``honour_range=False`` answers every
    request with the whole file (as servers without Range support do). ``redirects``: path →
    URL answered with a 302 to that URL (checked before ``files``).
    """

    files: dict[str, bytes]
    url: str = ""
    redirects: dict[str, str] = field(default_factory=dict)
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
            if name in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[name])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
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
                if isinstance(self.connection, ssl.SSLSocket):
                    # a clean TLS close, so the client keeps every byte it was sent
                    self.connection.settimeout(5)
                    try:
                        self.connection.unwrap()
                    except OSError:
                        pass  # the client closed first
                return
            self.wfile.write(body)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that refuses the certificate or hangs up is a test's point, not news."""
        if not isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve(files: dict[str, bytes], *, tls: bool = True) -> Iterator[ArchiveServer]:
    """Serve ``files`` (path → bytes) on 127.0.0.1 at an ephemeral port, over HTTPS with
    :data:`TEST_CERT` unless ``tls`` is False (plain HTTP)."""
    state = ArchiveServer(files)
    server = _Server(("127.0.0.1", 0), _handler(state))
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            certfile, keyfile = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
            Path(certfile).write_text(TEST_CERT)
            Path(keyfile).write_text(TEST_KEY)
            context.load_cert_chain(certfile, keyfile)
        # the handshake happens in the handler's thread, not in the accepting loop
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    state.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
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
