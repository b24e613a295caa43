"""A server process, seen from a bench script: a free port to give it, waiting until it
listens, and the CPU time it has used (from /proc: all threads, one, or with its children:
`veil serve` does its work in a writer and worker processes, not in the pid it started as)."""

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Until `port` accepts a connection; exit with the server's log if it dies or is late."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{log.read_text()}") from None
            time.sleep(0.05)


def cpu_seconds(pid: int, path: str = "") -> float:
    """user + system CPU time of a process (all its threads), or of one thread (`path`)."""
    fields = Path(f"/proc/{pid}{path}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def descendants(pid: int) -> list[int]:
    """The pids below `pid` alive now (from each process's parent in /proc/<pid>/stat: the
    per-task `children` files are missing on kernels built without CONFIG_PROC_CHILDREN)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone since the listing
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def tree_cpu(pid: int) -> float:
    """user + system CPU time of a process and all its descendants alive now."""
    total = 0.0
    for p in (pid, *descendants(pid)):
        with contextlib.suppress(OSError):  # ended between the listing and the read
            total += cpu_seconds(p)
    return total
