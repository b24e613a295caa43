"""veil's files on disk are the owner's alone: data files 0600, directories veil makes 0700,
whatever the process's umask.

- A directory veil creates (a missing store or keystore directory, and its missing parents) is
  made 0700 and set to exactly that: `mkdir -p` would give parents the umask's mode.
- An existing directory is the operator's (`sqlite:///veil.db` puts the store in a project's
  root; a volume may be shared with other services): veil never changes its mode, but logs a
  warning naming it when group or others can enter it. The files in it are 0600 either way.
- A SQLite database is created 0600 before SQLite opens it: SQLite gives its -wal, -shm and
  -journal files the database file's mode, so they follow. An existing database or sidecar
  of veil's that is open to group or others (made by an older veil) is set to 0600.
"""

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("veil.files")
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
_warned: set[Path] = set()  # once per path and process: the store and keystore share a directory


def _warn_once(path: Path, message: str, *args: object) -> None:
    if path not in _warned:
        _warned.add(path)
        log.warning(message, *args)


def _open_to_others(mode: int) -> bool:
    return bool(stat.S_IMODE(mode) & 0o077)


def private_dir(path: Path) -> list[Path]:
    """Make `path` and its missing parents 0700; warn about an existing one open to others.
    Returns the directories created."""
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    created = []
    for p in reversed(missing):
        try:
            os.mkdir(p, PRIVATE_DIR)
        except FileExistsError:  # another process made it first: it is not ours to chmod
            continue
        os.chmod(p, PRIVATE_DIR)  # the umask may have taken bits off; set exactly 0700
        created.append(p)
    if not created and _open_to_others(path.stat().st_mode):
        _warn_once(
            path,
            "%s is open to group or others (mode %o): veil's files in it are "
            "0600, but their names and sizes show; run: chmod 700 %s",
            path,
            stat.S_IMODE(path.stat().st_mode),
            path,
        )
    return created


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if it does not exist; set an existing one of veil's
    that is open to group or others to 0600 (a file of another user's is only warned about)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        os.chmod(path, PRIVATE_FILE)  # a umask like 0o277 would leave the owner unable to write
        return
    except FileExistsError:
        pass
    tighten(path)


def tighten(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode) or not _open_to_others(st.st_mode):
        return
    try:
        os.chmod(path, PRIVATE_FILE)
    except PermissionError:
        _warn_once(
            path,
            "%s is readable by group or others (mode %o) and not veil's to "
            "change: run: chmod 600 %s",
            path,
            stat.S_IMODE(st.st_mode),
            path,
        )
    else:
        log.info("set %s to mode 600 (it was %o)", path, stat.S_IMODE(st.st_mode))


def private_sqlite(path: Path) -> None:
    """Before `sqlite3.connect(path)`: its directory private, the database file 0600 (SQLite
    then creates its sidecars with the same mode), existing sidecars tightened too."""
    private_dir(path.parent)
    private_file(path)
    for suffix in SQLITE_SIDECARS:
        tighten(path.with_name(path.name + suffix))


def warn_if_readable(path: Path, where: str) -> None:
    """A secret the operator keeps in a file (a master key, a shared secret) should be theirs
    alone: say so when group or others can read it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # the caller reports a file it cannot read
    if _open_to_others(mode):
        _warn_once(
            path,
            "%s: %s is readable by group or others (mode %o): run: chmod 600 %s",
            where,
            path,
            stat.S_IMODE(mode),
            path,
        )
