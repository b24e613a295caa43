"""Holds a SQLite store's write lock (BEGIN IMMEDIATE, as a `veil retention` run from cron or a
backup does) from printing "locked" until its stdin closes. bench/store_contention.py and
tests/test_store_contention.py run it as the other process.

    python bench/hold_write_lock.py STORE.db
"""

import sqlite3
import sys

db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
