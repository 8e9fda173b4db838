"""Durable response cache: never pay twice for the same answer.

Why SQLite in WAL mode: it is in the stdlib, one file, readers never block the
writer, and several processes (Dagster runs one process per step) can share it
safely with a busy timeout.  ``synchronous=NORMAL`` means a commit survives the
process being SIGKILLed (the WAL is in the OS page cache); only an OS crash or
power loss can drop the last commits, which costs a few seconds of re-requests.

Writes go through one background thread per cache that commits what arrives
within 20 ms of a first reply in one transaction, so a finished response is on
disk within tens of milliseconds, well inside the ~1 s budget, without blocking
the client's event loop on SQLite.

``MMFR_LLM_CACHE`` may instead be a PostgreSQL URL (``postgresql://user:password@host/db``):
then every run on every machine shares one cache (SQLite's WAL needs every process on one host;
on NFS or an object-store mount it corrupts or fails). The same writer thread commits to a
``mmfr_llm_responses`` table with ``ON CONFLICT DO NOTHING``, so any number of concurrent
writers is safe and the first answer stored for a key is the one every run reads.

The key is the sha256 of the canonical JSON of everything that determines the
response (model, messages with images replaced by their sha256, sampling
parameters, seed, n, extra_body), and nothing that does not (base URL, API key),
so the same request against another replica of the same model is a hit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import re
import sqlite3
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import pyarrow as pa

from mmfr_assets.settings import DEFAULT_LLM_CACHE, LLM_CACHE_ENV, llm_cache_location

from .images import data_url_digest

logger = logging.getLogger(__name__)

#: Bump to invalidate every cached answer (e.g. if the canonical form changes).
CACHE_KEY_VERSION = 1

DEFAULT_CACHE_ENV = LLM_CACHE_ENV
DEFAULT_CACHE_PATH = str(DEFAULT_LLM_CACHE)


def default_cache_path(environ: Optional[Mapping[str, str]] = None) -> str:
    """``$MMFR_LLM_CACHE`` or ``data/llm_cache.sqlite`` (``data/`` is git-ignored): read by
    :func:`mmfr_assets.settings.llm_cache_location`."""
    return llm_cache_location(environ)


def canonical_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a chat-completions body with inline image data replaced by its digest."""
    out = dict(body)
    if "messages" in out:
        out["messages"] = [_canon_message(m) for m in out["messages"]]
    return out


def _canon_message(message: Mapping[str, Any]) -> Any:
    content = message.get("content")
    if not isinstance(content, list):
        return dict(message)
    parts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            digest = data_url_digest(url) if isinstance(url, str) else None
            if digest is not None:
                new_image = dict(image) if isinstance(image, Mapping) else {}
                new_image["url"] = digest
                part = {**part, "image_url": new_image}
        parts.append(part)
    return {**message, "content": parts}


def cache_key(body: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON (sorted keys) of ``body``."""
    canon = {"v": CACHE_KEY_VERSION, "request": canonical_request(body)}
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT,
    created_at REAL NOT NULL,
    payload BLOB NOT NULL
)
"""


def is_postgres_url(location: Union[str, os.PathLike]) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def redacted(location: Union[str, os.PathLike]) -> str:
    """The location as it may be shown: a URL's password replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(location))


class _SQLiteStore:
    """The SQL of the one-file cache (WAL, busy timeout, `INSERT OR IGNORE`)."""

    def __init__(self, path: Union[str, os.PathLike], busy_timeout_s: float) -> None:
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout_s = busy_timeout_s
        self.name = self.path.name
        self.errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s, check_same_thread=False,
                               isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def create(self, conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    def select(self, conn: sqlite3.Connection, keys: Sequence[str]) -> list[tuple[str, bytes]]:
        return conn.execute(
            f"SELECT key, payload FROM responses WHERE key IN ({','.join('?' * len(keys))})", list(keys)
        ).fetchall()

    def insert(self, conn: sqlite3.Connection, rows: list[tuple[str, str, float, bytes]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO responses (key, model, created_at, payload) VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def count(self, conn: sqlite3.Connection) -> int:
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


class _PostgresStore:
    """The same table on PostgreSQL, shared by every process on every host (psycopg2, which the
    `postgres` extra installs with dagster-postgres)."""

    TABLE = "mmfr_llm_responses"

    def __init__(self, url: str, busy_timeout_s: float) -> None:
        try:
            import psycopg2
        except ImportError as error:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "MMFR_LLM_CACHE is a PostgreSQL URL, which needs psycopg2: "
                "pip install 'mmfr-assets[postgres]'") from error
        self._psycopg2 = psycopg2
        self.url = url
        self.path = redacted(url)
        self.name = "postgres"
        self.timeout_s = busy_timeout_s
        self.errors = (psycopg2.Error,)

    def connect(self) -> Any:
        try:
            conn = self._psycopg2.connect(self.url, connect_timeout=int(max(1, self.timeout_s)))
        except self._psycopg2.Error as error:  # the driver's message can quote the DSN
            raise RuntimeError(f"llm cache: cannot connect to {self.path}: "
                               f"{redacted(str(error).strip().splitlines()[0])}") from None
        conn.autocommit = True  # readers never hold a transaction open; insert() opens its own
        return conn

    def create(self, conn: Any) -> None:
        with conn.cursor() as cursor:
            try:
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.TABLE} (key TEXT PRIMARY KEY, model TEXT, "
                    "created_at DOUBLE PRECISION NOT NULL, payload BYTEA NOT NULL)")
            except self._psycopg2.IntegrityError:
                pass  # two processes creating it at once: the other one won, the table exists

    def select(self, conn: Any, keys: Sequence[str]) -> list[tuple[str, bytes]]:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT key, payload FROM {self.TABLE} WHERE key = ANY(%s)", (list(keys),))
            return [(key, bytes(blob)) for key, blob in cursor.fetchall()]

    def insert(self, conn: Any, rows: list[tuple[str, str, float, bytes]]) -> None:
        from psycopg2.extras import execute_values

        with conn.cursor() as cursor:
            cursor.execute("BEGIN")
            try:
                execute_values(
                    cursor, f"INSERT INTO {self.TABLE} (key, model, created_at, payload) VALUES %s "
                    "ON CONFLICT (key) DO NOTHING",
                    [(k, m, t, self._psycopg2.Binary(b)) for k, m, t, b in rows])
                cursor.execute("COMMIT")
            except BaseException:
                try:
                    cursor.execute("ROLLBACK")
                except self._psycopg2.Error:
                    pass
                raise

    def count(self, conn: Any) -> int:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {self.TABLE}")
            return cursor.fetchone()[0]


class ResponseCache:
    """SQLite-backed map ``cache_key -> response payload`` (a JSON-able dict).

    Payloads are zstd-compressed JSON (level 3, through pyarrow's codec): CoT
    traces compress ~3x and a full run holds millions of them. Entries written
    as zlib by earlier versions still read.  ``put`` never blocks on disk; ``get`` also sees
    entries still queued for writing.  Use as a context manager or call
    :meth:`close` (which flushes).
    """

    def __init__(self, path: Union[str, os.PathLike], *, busy_timeout_s: float = 60.0,
                 max_batch: int = 512, max_delay_s: float = 0.02) -> None:
        self._store: Union[_SQLiteStore, _PostgresStore] = (
            _PostgresStore(str(path), busy_timeout_s) if is_postgres_url(path)
            else _SQLiteStore(path, busy_timeout_s))
        #: The file, or the URL with its password redacted (safe to log).
        self.path = self._store.path
        self._busy_timeout_s = busy_timeout_s
        self._max_batch = max_batch
        self._max_delay_s = max_delay_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}
        self._pending_lock = threading.Lock()
        self._queue: "queue.Queue[Optional[tuple[str, str, dict[str, Any]]]]" = queue.Queue()
        self._closed = False
        self.write_errors = 0
        self._store.create(self._connect())
        self._writer = threading.Thread(target=self._write_loop, name=f"llm-cache-writer:{self._store.name}",
                                        daemon=True)
        self._writer.start()

    # -- connections -------------------------------------------------------
    def _connect(self) -> Any:
        conn = self._store.connect()
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _reader(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    # -- public API --------------------------------------------------------
    def get(self, key: str) -> Optional[dict[str, Any]]:
        """The payload stored for ``key``, or None (treat the result as read-only)."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The payloads stored for those of ``keys`` that have one, in one query per 500 keys
        (a caller sending a burst of requests looks them all up at once)."""
        found: dict[str, dict[str, Any]] = {}
        with self._pending_lock:
            for key in keys:
                pending = self._pending.get(key)
                if pending is not None:
                    found[key] = pending
        rest = [key for key in keys if key not in found]
        conn = self._reader()
        for start in range(0, len(rest), 500):
            for key, blob in self._store.select(conn, rest[start:start + 500]):
                try:
                    found[key] = json.loads(_decode(blob))
                except Exception:  # a corrupt row is a miss; the fresh answer cannot replace it (INSERT OR IGNORE)
                    logger.warning("llm cache: undecodable entry %s ignored", key[:12])
        return found

    def put(self, key: str, payload: Mapping[str, Any], *, model: str = "") -> None:
        """Queue ``payload`` for a durable write (committed within tens of milliseconds).

        Serialisation and compression happen on the writer thread so callers
        (the client's event loop) never pay for them.
        """
        if self._closed:
            raise RuntimeError("ResponseCache is closed")
        payload = dict(payload)
        with self._pending_lock:
            self._pending[key] = payload
        self._queue.put((key, model, payload))

    def flush(self, timeout_s: Optional[float] = None) -> bool:
        """Block until every queued write is committed; False on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            with self._pending_lock:
                if not self._pending:
                    return True
            if not self._writer.is_alive():
                return False
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.005)

    def __len__(self) -> int:
        return self._store.count(self._reader())

    def close(self) -> None:
        """Flush pending writes, stop the writer and close connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join(timeout=self._busy_timeout_s + 5)
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except Exception:
                    pass
            self._conns.clear()

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    # -- writer thread -----------------------------------------------------
    def _write_loop(self) -> None:
        conn = self._connect()
        stop = False
        while not stop:
            item = self._queue.get()
            batch = []
            if item is None:
                stop = True
            else:
                batch.append(item)
            # Gather what arrives within `max_delay_s` of the first item into one commit, fewer
            # commits at hundreds of replies a second (measured: a few percent of the client's
            # CPU per request; the bound on loss at a kill stays tens of milliseconds).
            deadline = time.monotonic() + self._max_delay_s
            while len(batch) < self._max_batch and not stop:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    continue
                batch.append(item)
            if batch:
                try:
                    self._write_batch(conn, batch)
                except Exception as exc:  # never let the writer die: flush() would wait forever
                    self.write_errors += len(batch)
                    logger.error("llm cache: dropping %d responses: %s: %s", len(batch), type(exc).__name__, exc)
                    with self._pending_lock:
                        for key, _model, payload in batch:
                            if self._pending.get(key) is payload:
                                del self._pending[key]

    def _write_batch(self, conn: Any, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        now = time.time()
        rows = [(key, model, now, _encode(payload)) for key, model, payload in batch]
        for attempt in range(5):
            try:
                self._store.insert(conn, rows)
                break
            except self._store.errors as exc:
                if attempt == 4:
                    self.write_errors += len(rows)
                    logger.error("llm cache: dropping %d responses after write errors: %s", len(rows), exc)
                else:
                    time.sleep(0.2 * (attempt + 1))
        with self._pending_lock:
            for key, _model, payload in batch:
                if self._pending.get(key) is payload:
                    del self._pending[key]


#: zstd through pyarrow (already a dependency): on real traces level 3 compresses 3.6x faster
#: than zlib's default level for 8% more bytes; at hundreds of replies a second the cache
#: writer's CPU competes with the client's. pyarrow's codec needs the decompressed size, so a
#: blob is a tag byte, that size (4 bytes, little-endian) and the zstd frame. The tag tells it
#: from the zlib blobs of earlier versions (which start with 0x78).
_ZSTD = pa.Codec("zstd", compression_level=3)
_ZSTD_TAG = b"\x01"


def _encode(payload: Mapping[str, Any]) -> bytes:
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _ZSTD_TAG + struct.pack("<I", len(raw)) + _ZSTD.compress(raw, asbytes=True)


def _decode(blob: bytes) -> bytes:
    if blob[:1] == _ZSTD_TAG:
        (size,) = struct.unpack_from("<I", blob, 1)
        return _ZSTD.decompress(memoryview(blob)[5:], decompressed_size=size, asbytes=True)
    return zlib.decompress(blob)
