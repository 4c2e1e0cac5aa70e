"""One SQLite database per container (its object listing) and per account (its container listing).

Rows are never updated in place: a newer row replaces an older one by delete + insert, so every
change gets a fresh ROWID and the replicator can send "rows after ROWID n" to its peers. Triggers
keep the totals (objects, bytes, containers) so HEAD never scans a table.

Paths: DEVICES/<device>/<containers|accounts>/<partition>/<suffix>/<hash>/<hash>.db
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stratus.object.utils import normalize_timestamp

ZERO = normalize_timestamp(0)
CONTAINER_SCHEMA = """
CREATE TABLE object (name TEXT UNIQUE NOT NULL, created_at TEXT NOT NULL, size INTEGER NOT NULL,
    content_type TEXT NOT NULL, etag TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX ix_object_deleted_name ON object (deleted, name);
CREATE TRIGGER object_insert AFTER INSERT ON object BEGIN
    UPDATE info SET object_count = object_count + (1 - new.deleted),
                    bytes_used = bytes_used + (1 - new.deleted) * new.size;
END;
CREATE TRIGGER object_delete AFTER DELETE ON object BEGIN
    UPDATE info SET object_count = object_count - (1 - old.deleted),
                    bytes_used = bytes_used - (1 - old.deleted) * old.size;
END;
"""
ACCOUNT_SCHEMA = """
CREATE TABLE container (name TEXT UNIQUE NOT NULL, put_timestamp TEXT NOT NULL,
    delete_timestamp TEXT NOT NULL, object_count INTEGER NOT NULL, bytes_used INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX ix_container_deleted_name ON container (deleted, name);
CREATE TRIGGER container_insert AFTER INSERT ON container BEGIN
    UPDATE info SET container_count = container_count + (1 - new.deleted),
                    object_count = object_count + (1 - new.deleted) * new.object_count,
                    bytes_used = bytes_used + (1 - new.deleted) * new.bytes_used;
END;
CREATE TRIGGER container_delete AFTER DELETE ON container BEGIN
    UPDATE info SET container_count = container_count - (1 - old.deleted),
                    object_count = object_count - (1 - old.deleted) * old.object_count,
                    bytes_used = bytes_used - (1 - old.deleted) * old.bytes_used;
END;
"""
INFO_SCHEMA = """
CREATE TABLE info (account TEXT NOT NULL, container TEXT, id TEXT NOT NULL, created_at TEXT NOT NULL,
    put_timestamp TEXT NOT NULL, delete_timestamp TEXT NOT NULL, status_changed_at TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}', object_count INTEGER NOT NULL DEFAULT 0,
    bytes_used INTEGER NOT NULL DEFAULT 0, container_count INTEGER NOT NULL DEFAULT 0,
    reported_put_timestamp TEXT NOT NULL DEFAULT '0', reported_delete_timestamp TEXT NOT NULL DEFAULT '0',
    reported_object_count INTEGER NOT NULL DEFAULT -1, reported_bytes_used INTEGER NOT NULL DEFAULT -1);
CREATE TABLE incoming_sync (remote_id TEXT PRIMARY KEY, sync_point INTEGER NOT NULL);
CREATE TABLE outgoing_sync (remote_id TEXT PRIMARY KEY, sync_point INTEGER NOT NULL);
"""


class DatabaseMissing(Exception):
    pass


class ConnectionCache:
    """Open connections kept per database file, one user at a time each.

    Opening costs little, but closing the last connection of a WAL database checkpoints it and
    removes the WAL, which made every row update several times dearer. A file replaced on disk
    (quarantined, re-created) has a new inode and so gets a new connection.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, int], tuple[sqlite3.Connection, threading.RLock]] = OrderedDict()

    @contextmanager
    def use(self, path: str, inode: int) -> Iterator[sqlite3.Connection]:
        key = (path, inode)
        with self._lock:
            item = self._items.get(key)
            if item is None:
                connection = sqlite3.connect(path, timeout=25, isolation_level=None, check_same_thread=False)
                connection.row_factory = sqlite3.Row
                connection.execute("PRAGMA synchronous=NORMAL")
                item = self._items[key] = (connection, threading.RLock())
                while len(self._items) > self.size:
                    _, (old, old_lock) = self._items.popitem(last=False)
                    if old_lock.acquire(blocking=False):  # one in use closes when its user is done
                        old.close()
                        old_lock.release()
            self._items.move_to_end(key)
        connection, lock = item
        with lock:
            yield connection

    def forget(self, path: str) -> None:
        """Close the connections to `path` (before its file is moved or removed)."""
        with self._lock:
            for key in [k for k in self._items if k[0] == path]:
                connection, lock = self._items.pop(key)
                with lock:
                    connection.close()


CONNECTIONS = ConnectionCache()


def _after(text: str) -> str | None:
    """The smallest string greater than every string starting with `text` (None: there is none)."""
    while text and ord(text[-1]) == 0x10FFFF:
        text = text[:-1]
    return text[:-1] + chr(ord(text[-1]) + 1) if text else None


def db_path(device_dir: Path, kind: str, partition: int | str, name_hash: str) -> Path:
    return device_dir / kind / str(partition) / name_hash[-3:] / name_hash / f"{name_hash}.db"


def merge_metadata(current: dict[str, list[str]], update: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per key, the value with the newest timestamp wins (an empty value is a deletion)."""
    out = dict(current)
    for key, (value, stamp) in update.items():
        if key not in out or out[key][1] < stamp:
            out[key] = [value, stamp]
    return out


class Broker:
    """One account or container database."""

    kind = ""
    table = ""
    schema = ""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def conn(self) -> Iterator[sqlite3.Connection]:
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError as exc:
            raise DatabaseMissing(str(self.path)) from exc
        with CONNECTIONS.use(str(self.path), inode) as connection:
            yield connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.conn() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def exists(self) -> bool:
        return self.path.exists()

    def initialize(self, account: str, container: str | None, put_timestamp: str,
                   db_id: str | None = None) -> bool:
        """Create the database (False when it already existed); atomically, via a temp file."""
        if self.path.exists():
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{uuid.uuid4().hex}.tmp")
        connection = sqlite3.connect(tmp, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(INFO_SCHEMA + self.schema)
            now = normalize_timestamp(time.time())
            connection.execute(
                "INSERT INTO info (account, container, id, created_at, put_timestamp, delete_timestamp, "
                "status_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (account, container, db_id or str(uuid.uuid4()), now, put_timestamp, ZERO, now))
        finally:
            connection.close()
        try:
            os.link(tmp, self.path)  # fails if another request created it first
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    # -- info and metadata -----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        with self.conn() as connection:
            row = connection.execute("SELECT * FROM info").fetchone()
            info = dict(row)
            info["max_row"] = connection.execute(f"SELECT COALESCE(MAX(ROWID), -1) FROM {self.table}").fetchone()[0]
        info["metadata"] = json.loads(info["metadata"])
        return info

    def is_deleted(self, info: dict[str, Any] | None = None) -> bool:
        info = info or self.info()
        if info["delete_timestamp"] <= info["put_timestamp"]:
            return False
        return not (info["object_count"] if self.kind == "containers" else info["container_count"])

    def update_metadata(self, update: dict[str, list[str]]) -> None:
        if not update:
            return
        with self.transaction() as connection:
            current = json.loads(connection.execute("SELECT metadata FROM info").fetchone()[0])
            merged = merge_metadata(current, update)
            connection.execute("UPDATE info SET metadata = ?", (json.dumps(merged),))

    def update_put_timestamp(self, timestamp: str) -> None:
        with self.transaction() as connection:
            connection.execute("UPDATE info SET put_timestamp = ?, status_changed_at = ? WHERE put_timestamp < ?",
                               (timestamp, normalize_timestamp(time.time()), timestamp))

    def mark_deleted(self, timestamp: str) -> None:
        with self.transaction() as connection:
            connection.execute("UPDATE info SET delete_timestamp = ?, status_changed_at = ? "
                               "WHERE delete_timestamp < ?", (timestamp, normalize_timestamp(time.time()), timestamp))

    def merge_timestamps(self, put_timestamp: str, delete_timestamp: str) -> None:
        with self.transaction() as connection:
            connection.execute("UPDATE info SET put_timestamp = MAX(put_timestamp, ?), "
                               "delete_timestamp = MAX(delete_timestamp, ?)", (put_timestamp, delete_timestamp))

    # -- replication -----------------------------------------------------------------------------
    def rows_after(self, point: int, limit: int) -> list[dict[str, Any]]:
        with self.conn() as connection:
            rows = connection.execute(f"SELECT ROWID AS row_id, * FROM {self.table} WHERE ROWID > ? "
                                      "ORDER BY ROWID LIMIT ?", (point, limit)).fetchall()
        return [dict(r) for r in rows]

    def sync_point(self, table: str, remote_id: str) -> int:
        with self.conn() as connection:
            row = connection.execute(f"SELECT sync_point FROM {table} WHERE remote_id = ?", (remote_id,)).fetchone()
        return -1 if row is None else int(row[0])

    def set_sync_point(self, table: str, remote_id: str, point: int) -> None:
        with self.transaction() as connection:
            connection.execute(f"INSERT INTO {table} (remote_id, sync_point) VALUES (?, ?) ON CONFLICT(remote_id) "
                               "DO UPDATE SET sync_point = MAX(sync_point, excluded.sync_point)", (remote_id, point))

    def reclaim(self, age: float) -> None:
        """Drop deleted rows older than `age` seconds (every replica has had time to see them)."""
        cutoff = normalize_timestamp(max(time.time() - age, 0))
        column = "created_at" if self.kind == "containers" else "delete_timestamp"
        with self.transaction() as connection:
            connection.execute(f"DELETE FROM {self.table} WHERE deleted = 1 AND {column} < ?", (cutoff,))

    def merge_items(self, items: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    # -- listings --------------------------------------------------------------------------------
    def _select(self, connection: sqlite3.Connection, columns: str, marker: str, end_marker: str,
                prefix: str, reverse: bool, limit: int) -> list[sqlite3.Row]:
        where, args = ["deleted = 0"], []
        if marker:
            where.append("name < ?" if reverse else "name > ?")
            args.append(marker)
        if end_marker:
            where.append("name > ?" if reverse else "name < ?")
            args.append(end_marker)
        if prefix:
            where.append("name >= ?")
            args.append(prefix)
            upper = _after(prefix)
            if upper is not None:
                where.append("name < ?")
                args.append(upper)
        sql = (f"SELECT {columns} FROM {self.table} WHERE {' AND '.join(where)} "
               f"ORDER BY name {'DESC' if reverse else 'ASC'} LIMIT ?")
        return connection.execute(sql, [*args, limit]).fetchall()

    def listing(self, columns: str, *, limit: int, marker: str = "", end_marker: str = "", prefix: str = "",
                delimiter: str = "", reverse: bool = False) -> list[dict[str, Any]]:
        """Rows in name order; with a delimiter, names beyond it fold into one {"subdir": ...} entry."""
        out: list[dict[str, Any]] = []
        given_marker = marker
        with self.conn() as connection:
            while len(out) < limit:
                rows = self._select(connection, columns, marker, end_marker, prefix, reverse, limit - len(out))
                if not rows:
                    break
                for row in rows:
                    name = row["name"]
                    cut = name.find(delimiter, len(prefix)) if delimiter else -1
                    # A name ending in the delimiter ("photos/", a directory marker) is an object, as
                    # in Swift; only longer names fold into the subdir.
                    if cut < 0 or cut + len(delimiter) == len(name):
                        out.append(dict(row))
                        marker = name
                        if len(out) >= limit:
                            break
                        continue
                    subdir = name[:cut + len(delimiter)]
                    # Past this subdir in one step (and never list the marker's own subdir again).
                    if reverse:
                        marker = subdir
                    else:
                        upper = _after(subdir)
                        if upper is None:
                            return out
                        marker = upper
                    if subdir != (out[-1].get("subdir") if out else None) and subdir != given_marker:
                        out.append({"subdir": subdir})
                    break  # re-query from the new marker
        return out[:limit]


class ContainerBroker(Broker):
    kind = "containers"
    table = "object"
    schema = CONTAINER_SCHEMA
    columns = "name, created_at, size, content_type, etag"

    def put_object(self, name: str, timestamp: str, size: int, content_type: str, etag: str,
                   deleted: bool = False) -> None:
        self.merge_items([{"name": name, "created_at": timestamp, "size": size, "content_type": content_type,
                           "etag": etag, "deleted": int(deleted)}])

    def merge_items(self, items: list[dict[str, Any]]) -> None:
        with self.transaction() as connection:
            for item in items:
                row = connection.execute("SELECT created_at FROM object WHERE name = ?", (item["name"],)).fetchone()
                if row is not None:
                    if row[0] >= item["created_at"]:
                        continue
                    connection.execute("DELETE FROM object WHERE name = ?", (item["name"],))
                connection.execute("INSERT INTO object (name, created_at, size, content_type, etag, deleted) "
                                   "VALUES (?, ?, ?, ?, ?, ?)",
                                   (item["name"], item["created_at"], int(item["size"]), item["content_type"],
                                    item["etag"], int(item["deleted"])))

    def reported(self, info: dict[str, Any]) -> None:
        with self.transaction() as connection:
            connection.execute("UPDATE info SET reported_put_timestamp = ?, reported_delete_timestamp = ?, "
                               "reported_object_count = ?, reported_bytes_used = ?",
                               (info["put_timestamp"], info["delete_timestamp"], info["object_count"],
                                info["bytes_used"]))


class AccountBroker(Broker):
    kind = "accounts"
    table = "container"
    schema = ACCOUNT_SCHEMA
    columns = "name, put_timestamp, delete_timestamp, object_count, bytes_used"

    def put_container(self, name: str, put_timestamp: str, delete_timestamp: str, object_count: int,
                      bytes_used: int) -> None:
        self.merge_items([{"name": name, "put_timestamp": put_timestamp, "delete_timestamp": delete_timestamp,
                           "object_count": object_count, "bytes_used": bytes_used}])

    def merge_items(self, items: list[dict[str, Any]]) -> None:
        with self.transaction() as connection:
            for item in items:
                put_ts, delete_ts = item["put_timestamp"], item["delete_timestamp"]
                count, used = int(item["object_count"]), int(item["bytes_used"])
                row = connection.execute("SELECT * FROM container WHERE name = ?", (item["name"],)).fetchone()
                if row is not None:
                    # Stats come with the newest of the two timestamps; never go back in time.
                    newer = max(put_ts, delete_ts) >= max(row["put_timestamp"], row["delete_timestamp"])
                    if not newer and put_ts <= row["put_timestamp"] and delete_ts <= row["delete_timestamp"]:
                        continue
                    if not newer:
                        count, used = row["object_count"], row["bytes_used"]
                    put_ts, delete_ts = max(put_ts, row["put_timestamp"]), max(delete_ts, row["delete_timestamp"])
                    connection.execute("DELETE FROM container WHERE name = ?", (item["name"],))
                deleted = int(delete_ts > put_ts)
                connection.execute("INSERT INTO container (name, put_timestamp, delete_timestamp, object_count, "
                                   "bytes_used, deleted) VALUES (?, ?, ?, ?, ?, ?)",
                                   (item["name"], put_ts, delete_ts, count, used, deleted))
