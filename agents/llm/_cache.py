"""An on-disk response cache (SQLite): a re-run costs nothing, sampled rollouts stay distinct.

The key is a hash of the full request (model, api_base, messages, structured-answer schema,
every sampling parameter; never the API key) plus the task and the rollout index: rollouts
sampled at a temperature do not collapse into one, and two tasks whose first prompts are
identical (round 1 shows no history) still get independent samples. Only successful responses
are stored; errors never are.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

CACHE_ENV = "REGRET_CACHE_DIR"
CACHE_FILE = "responses.sqlite"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "regret-harness")


def request_key(request: dict[str, Any], rollout: int, task: str = "") -> str:
    """A stable key for a request of one task's rollout; `request` must not contain the API key."""
    payload = json.dumps([request, rollout, task], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(payload.encode(), digest_size=20).hexdigest()


class ResponseCache:
    """get(key) -> dict | None and put(key, value); thread-safe, one connection per cache file.

    Writes are batched (one transaction per `batch` entries or `flush_s` seconds, and on close):
    a commit per response would block the event loop for a millisecond or more on a busy disk,
    and an entry lost to a crash only costs one repeated call. Reads of keys that are not there
    (every call of a fresh run) skip SQLite through an in-memory index of the keys present when
    the cache was opened (up to `index_limit` keys), because an SQLite read releases the GIL and
    stalls the event loop for far longer than it computes. Entries another process adds while
    this one runs are then not seen: that only costs a repeated call.
    """

    def __init__(self, directory: str | Path | None = None, batch: int = 256, flush_s: float = 2.0,
                 index_limit: int = 500_000) -> None:
        self.path = Path(directory or default_cache_dir()) / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a lost cache entry only costs a repeated call
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, value TEXT)")
        self.hits = self.misses = 0
        self._pending: dict[str, tuple[str, str]] = {}
        self._batch, self._flush_s = batch, flush_s
        self._last_flush = time.monotonic()
        self._index: set[bytes] | None = None  # 20-byte digests of the stored keys, when not too many
        (count,) = self._db.execute("SELECT count(*) FROM responses").fetchone()
        if count <= index_limit:
            self._index = {bytes.fromhex(k) for (k,) in self._db.execute("SELECT key FROM responses")}

    def get(self, key: str) -> dict | None:
        with self._lock:
            if self._index is not None and bytes.fromhex(key) not in self._index:
                self.misses += 1
                return None
            pending = self._pending.get(key)
            row = (pending[1],) if pending else self._db.execute(
                "SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, model: str, value: dict) -> None:
        text = json.dumps(value, separators=(",", ":"))
        with self._lock:
            self._pending[key] = (model, text)
            if self._index is not None:
                self._index.add(bytes.fromhex(key))
            if len(self._pending) >= self._batch or time.monotonic() - self._last_flush >= self._flush_s:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)",
                                     [(k, m, v) for k, (m, v) in self._pending.items()])
            self._pending.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._flush()
            self._db.close()


class ResponseCaches:
    """The response caches one run has open: one connection per cache file, shared by the run's
    LLM clients (in the run's `RunResources`) and closed together when the run ends."""

    def __init__(self) -> None:
        self._open: dict[Path, ResponseCache] = {}
        self._lock = threading.Lock()

    def open(self, directory: str | Path | None = None) -> ResponseCache:
        path = (Path(directory) if directory else default_cache_dir()).resolve()
        with self._lock:
            if path not in self._open:
                self._open[path] = ResponseCache(path)
            return self._open[path]

    def close(self) -> None:
        with self._lock:
            caches, self._open = list(self._open.values()), {}
        for cache in caches:
            cache.close()
