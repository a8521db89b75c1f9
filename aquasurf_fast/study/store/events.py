"""The study file's event log (``events``): an append-only record of what every process did.

``write_event`` is a function rather than a method of ``EventLog`` because opening a file writes
an event when it upgrades it (``Database``), before any part exists.
"""
from __future__ import annotations

import sqlite3
import time
from typing import List, Optional


def write_event(c: sqlite3.Connection, kind: str, class_id: Optional[int] = None,
                owner: Optional[str] = None, detail: Optional[str] = None) -> None:
    """Append one event inside the transaction ``c``."""
    c.execute(
        "INSERT INTO events (time, kind, class_id, owner, detail) VALUES (?, ?, ?, ?, ?)",
        (time.time(), kind, class_id, owner, detail),
    )


class EventLog:
    """``events`` (a part of ``Store``); holds the ``Database`` it reads and writes (not imported
    here: ``database`` imports ``write_event`` from this module)."""

    def __init__(self, db):
        self.db = db

    def log(self, c: sqlite3.Connection, kind: str, class_id: Optional[int] = None,
            owner: Optional[str] = None, detail: Optional[str] = None) -> None:
        """Append one event inside the transaction ``c`` (``write_event``)."""
        write_event(c, kind, class_id, owner, detail)

    def log_event(self, kind: str, class_id: Optional[int] = None, owner: Optional[str] = None,
                  detail: Optional[str] = None) -> None:
        """``log`` in a transaction of its own."""
        with self.db.transaction() as c:
            write_event(c, kind, class_id, owner, detail)

    def log_event_if_changed(self, kind: str, owner: Optional[str], detail: str) -> bool:
        """Log an event of ``kind`` unless the last one of that kind has the same ``detail``;
        returns whether it was logged."""
        with self.db.transaction() as c:
            last = c.execute("SELECT detail FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1",
                             (kind,)).fetchone()
            if last is not None and last[0] == detail:
                return False
            write_event(c, kind, owner=owner, detail=detail)
        return True

    def event_details(self, kind: str) -> List[str]:
        """The details of every event of ``kind``, oldest first."""
        return [d for d, in self.db.query("SELECT detail FROM events WHERE kind = ? ORDER BY id",
                                          (kind,))]

    def recent_events(self, limit: int = 100) -> List[tuple]:
        """(time, kind, class name or None, owner, detail) of the last ``limit`` events, newest
        first."""
        return self.db.query(
            "SELECT e.time, e.kind, c.canonical, e.owner, e.detail FROM events e "
            "LEFT JOIN classes c ON c.id = e.class_id ORDER BY e.id DESC LIMIT ?", (limit,))
