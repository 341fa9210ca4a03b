"""The durable per-subject ledger of a deployed release (SQLite, WAL mode).

A `RobustPrivacyRelease` with a budget keeps its counts here, in a file the owner names, so
that a budget survives a restart, holds across the threads and processes that share the file,
and never lets a query be answered before it is counted. Protocol of one query
(`RobustPrivacyRelease.query`):

1. **Reserve** (one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock before it
   reads): read each subject's count, refuse the whole query if any subject would pass its cap
   (nothing is written), else add the query's answers to the counts and insert one row per
   answer with a fresh random 64-bit nonce (`secrets.randbits(64)`; the nonce column is the
   primary key, so a nonce is never stored twice: a collision is redrawn), state `reserved`.
   Commit. No noise has been drawn yet.
2. **Compute** the answers; answer i's fresh noise is derived from (secret, nonce_i).
3. **Answer**: mark the rows `answered` and commit, before any label is returned.
   If step 2 or 3 raises (or the query is refused after reservation), the rows are marked
   `released` and the counts given back; the nonces stay in the table and are never drawn
   again.

A process killed between steps 1 and 3 (SIGKILL, power loss after the commit of step 1)
leaves its rows `reserved`: they are counted as spent, now and after any restart (a lost
answer costs its subject; a budget is never reset).

Durability: `durability="full"` (the default) commits each reservation with `PRAGMA
synchronous=FULL`: it is on disk (fsync of the write-ahead log) before the query computes, so
a power loss loses no reservation whose noise was drawn. The `answered` / `released` marks
are committed with `synchronous=NORMAL` (one fsync per query, not two): a power loss may
revert the last of them to `reserved`, which still counts as spent (a released reservation's
count is then not given back: conservative, never an extra answer). `durability="normal"`
runs `synchronous=NORMAL` throughout: in WAL mode a commit survives a crash of the process
(the log is in the OS's page cache), but the last commits before a power loss or OS crash may
be lost, and with them the counts of the answers they reserved: a subject could then be
answered again past its cap. What each costs is measured in
`benchmarks/RESULTS.md` ("The release's ledger").

Each thread has its own connection (`threading.local`), re-opened in a child after `fork`
(the process id is checked); `busy_timeout` is 60 s, so a query waits for another's
transaction rather than failing. The file's `meta` table records the schema version, the
fingerprint of the release's secret, its `ReleaseConfig` and its `Budget`; a ledger refuses
to open for a release that differs in any of them.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import Any

SCHEMA_VERSION = 1
DURABILITY = ("full", "normal")
BUSY_TIMEOUT_S = 60.0
_RESERVED, _ANSWERED, _RELEASED = "reserved", "answered", "released"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects (
  subject TEXT PRIMARY KEY,
  answers INTEGER NOT NULL,
  alpha REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
  nonce INTEGER PRIMARY KEY,
  subject TEXT,
  state TEXT NOT NULL CHECK (state IN ('reserved', 'answered', 'released'))
);
"""


def draw_nonce() -> int:
    """A random 64-bit nonce from the OS's CSPRNG (an int in [0, 2**64))."""
    return _secrets.randbits(64)


def subject_key(subject: str | int) -> str:
    """The ledger's text key of a (validated) subject: `s:<str>` or `i:<int>`, so that the
    string "1" and the integer 1 are different subjects."""
    return f"s:{subject}" if isinstance(subject, str) else f"i:{int(subject)}"


def _to_sql(nonce: int) -> int:  # SQLite integers are signed 64-bit
    return nonce - (1 << 64) if nonce >= (1 << 63) else nonce


def _from_sql(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


class LedgerBudgetExceeded(Exception):  # noqa: N818 - internal signal, re-raised by the release
    """Raised by `Ledger.reserve` when a subject would pass its cap (nothing was written).

    Attributes:
      key: the subject's ledger key; had: its answers so far; asked: answers it asked for.
    """

    def __init__(self, key: str, had: int, asked: int):
        super().__init__(key, had, asked)
        self.key, self.had, self.asked = key, had, asked


class Ledger:
    """Per-subject answer counts and per-answer nonces in an SQLite file (see the module
    docstring for the protocol).

    Args:
      path: the database file (created if missing; its directory must exist).
      meta: what the release is (JSON-ready): `secret_fingerprint`, `config`, `budget`.
        Stored on creation; on reopening, every entry must be equal.
      durability: "full" (`synchronous=FULL`, default) or "normal" (`synchronous=NORMAL`).

    Raises:
      ValueError: naming `ledger` and the differing fields, if the file was made for another
        secret, config, budget or schema version; naming `durability` for an unknown mode.
    """

    def __init__(self, path: str | os.PathLike, meta: Mapping[str, Any], *,
                 durability: str = "full"):
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {DURABILITY}, got "
                             f"durability={durability!r}.")
        self.path = os.fspath(path)
        self.durability = durability
        self._local = threading.local()
        want = {"schema_version": SCHEMA_VERSION, **meta}
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            stored = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}
            if not stored:
                conn.executemany("INSERT INTO meta VALUES (?, ?)",
                                 [(k, json.dumps(v, sort_keys=True)) for k, v in want.items()])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if stored:
            differ = _differences(stored, json.loads(json.dumps(want)))
            if differ:
                raise ValueError(
                    f"ledger={self.path!r} was made for another release; it differs in: "
                    f"{'; '.join(differ)}. A ledger holds the budgets of one release (secret, "
                    "config and budget): open it with those, or give this release its own "
                    "ledger.")

    # -------------------------------------------------------------------------- connections
    def _conn(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():  # new thread, or a child after fork
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.close()
                raise ValueError(f"ledger={self.path!r}: SQLite refused WAL mode (got "
                                 f"{mode!r}); put the ledger on a local file system.")
            conn.execute(f"PRAGMA synchronous={self.durability.upper()}")
            local.conn, local.pid = conn, os.getpid()
        return local.conn

    def close(self) -> None:
        """Closes this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.pid = None

    # ----------------------------------------------------------------------------- protocol
    def reserve(self, keys: Sequence[str | None], cap: int | None,
                alpha_each: float) -> list[int]:
        """Step 1: one reservation per entry of `keys` (None: no subject), in one
        `BEGIN IMMEDIATE` transaction. Returns the `[M]` nonces, in order.

        Raises:
          LedgerBudgetExceeded: if a subject would pass `cap` (nothing is written).
        """
        want: dict[str, int] = {}
        for k in keys:
            if k is not None:
                want[k] = want.get(k, 0) + 1
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if cap is not None:
                for k, c in want.items():
                    row = conn.execute("SELECT answers FROM subjects WHERE subject = ?",
                                       (k,)).fetchone()
                    had = 0 if row is None else int(row[0])
                    if had + c > cap:
                        raise LedgerBudgetExceeded(k, had, c)
            conn.executemany(
                "INSERT INTO subjects VALUES (?, ?, ?) ON CONFLICT(subject) DO UPDATE SET "
                "answers = answers + excluded.answers, alpha = alpha + excluded.alpha",
                [(k, c, c * alpha_each) for k, c in want.items()])
            nonces = []
            for k in keys:
                while True:
                    nonce = draw_nonce()
                    try:
                        conn.execute("INSERT INTO answers VALUES (?, ?, ?)",
                                     (_to_sql(nonce), k, _RESERVED))
                        break
                    except sqlite3.IntegrityError:  # the nonce was drawn before: redraw
                        continue
                nonces.append(nonce)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return nonces

    def answered(self, nonces: Sequence[int]) -> None:
        """Step 3: the reservations `nonces` are answered (committed before returning)."""
        self._set_state(nonces, _ANSWERED, None, 0.0)

    def release(self, nonces: Sequence[int], keys: Sequence[str | None],
                alpha_each: float) -> None:
        """A failed query: its reservations are `released` and its subjects' counts given
        back; the nonces stay stored (never drawn again)."""
        self._set_state(nonces, _RELEASED, keys, alpha_each)

    def _set_state(self, nonces, state, keys, alpha_each):
        conn = self._conn()
        # not synced on its own (synchronous=NORMAL for this transaction): if a power loss
        # takes it, the rows stay `reserved` and their counts stay spent, which costs the
        # subject but never gives an answer back; the next reservation's sync (FULL) writes
        # it too, since the log is one file written in order
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            self._set_state_in(conn, nonces, state, keys, alpha_each)
        finally:
            conn.execute(f"PRAGMA synchronous={self.durability.upper()}")

    def _set_state_in(self, conn, nonces, state, keys, alpha_each):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("UPDATE answers SET state = ? WHERE nonce = ? AND state = ?",
                             [(state, _to_sql(n), _RESERVED) for n in nonces])
            if keys is not None:
                back: dict[str, int] = {}
                for k in keys:
                    if k is not None:
                        back[k] = back.get(k, 0) + 1
                conn.executemany(
                    "UPDATE subjects SET answers = answers - ?, alpha = alpha - ? "
                    "WHERE subject = ?", [(c, c * alpha_each, k) for k, c in back.items()])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------------------ reading
    def answers(self, key: str) -> int:
        """Answers counted for the subject `key`: answered plus reserved (spent)."""
        row = self._conn().execute("SELECT answers FROM subjects WHERE subject = ?",
                                   (key,)).fetchone()
        return 0 if row is None else int(row[0])

    def states(self, key: str | None = None) -> dict[str, int]:
        """Rows per state (`reserved`, `answered`, `released`), of one subject or all."""
        sql = "SELECT state, COUNT(*) FROM answers"
        rows = (self._conn().execute(sql + " GROUP BY state") if key is None else
                self._conn().execute(sql + " WHERE subject = ? GROUP BY state", (key,)))
        out = {_RESERVED: 0, _ANSWERED: 0, _RELEASED: 0}
        out.update({s: int(c) for s, c in rows})
        return out

    def nonces(self, key: str | None = None) -> list[int]:
        """Every stored nonce (of one subject, or all), in no particular order."""
        rows = (self._conn().execute("SELECT nonce FROM answers") if key is None else
                self._conn().execute("SELECT nonce FROM answers WHERE subject = ?", (key,)))
        return [_from_sql(int(r[0])) for r in rows]


def _differences(stored: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    """`"field (stored != wanted)"` for each differing entry, nested dicts as `a.b`."""
    out = []
    for k in sorted(set(stored) | set(want)):
        a, b = stored.get(k), want.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{d}" for d in _differences(a, b)]
        elif a != b:
            out.append(f"{k} ({a!r} in the ledger, {b!r} here)")
    return out
