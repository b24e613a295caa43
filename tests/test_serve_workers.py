"""`veil serve --workers 2`: two uvicorn HTTP workers feeding one writer process over veil's
Unix socket, through real HTTP; what was stored is counted in the SQLite file, read-only.

What veil promises here: a 202 is kept. A graceful stop (SIGTERM) writes every queued beacon,
the workers' and the writer's; while the writer process is down (killed, restarted by `veil
serve`), the workers keep answering 202 and hold the beacons in their bounded buffers, then
deliver them to the new writer. Only what the writer itself had taken and not yet committed
when it died is lost (at most about one flush interval, as with one process and kill -9); the
tests below wait for a commit before killing, so they can require that nothing is lost.
"""

import json
import marshal
import os
import signal
import socket
import sqlite3
import stat
import time
from pathlib import Path

import httpx
from servers import ServerProcess

from conftest import CHROME, serve_collector

BEACON = json.dumps({"screen_w": 1920, "screen_h": 1080, "pixel_ratio": 1, "language": "de"})
HEADERS = {"Content-Type": "text/plain", "User-Agent": CHROME}


def serve(tmp_path: Path, master_key: str, capture: str = "") -> ServerProcess:
    return serve_collector(tmp_path, master_key, capture, workers=2)


def stored(db: Path) -> int:
    """Beacons in the store, read-only (a reader beside the running writer is fine)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT count(*) FROM events").fetchone()[0]


def drops(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return dict(con.execute("SELECT reason, sum(count) FROM drops GROUP BY reason"))


def beacon_each_worker(server: ServerProcess, n: int) -> tuple[int, set[int]]:
    """`n` beacons, each on a new connection (the workers take turns accepting), and the
    pids of the workers that answered /healthz meanwhile: (202s, pids)."""
    accepted, pids = 0, set()
    for _ in range(n):
        with httpx.Client(base_url=server.url) as client:
            accepted += client.post("/veil/e", content=BEACON, headers=HEADERS).status_code == 202
        with httpx.Client(base_url=server.url) as client:
            pids.add(client.get("/healthz").json()["pid"])
    return accepted, pids


def framed(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def children(pid: int) -> dict[int, str]:
    """A process's children: pid -> command line."""
    out = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        out[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return out


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_beacons_to_both_workers_are_stored_once_by_the_writer(tmp_path, master_key):
    server = serve(tmp_path, master_key)
    try:
        accepted, pids = beacon_each_worker(server, 60)
        assert accepted == 60
        assert len(pids) == 2, "both workers answered"
        assert server.proc.pid not in pids  # the workers, not the supervisor, serve HTTP
        wait_for(lambda: stored(server.db) == 60)
    finally:
        assert server.stop() == 0
    assert stored(server.db) == 60  # once each: nothing more at shutdown
    assert "Traceback" not in server.log.read_text()


def test_sigterm_loses_nothing_queued(tmp_path, master_key):
    # nothing is written before the stop: every beacon is still queued when SIGTERM comes
    server = serve(tmp_path, master_key, "[capture]\nflush_interval = 60.0\nbatch_size = 5000\n")
    try:
        accepted, pids = beacon_each_worker(server, 150)
        assert accepted == 150 and len(pids) == 2
        assert stored(server.db) == 0
    finally:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
    assert stored(server.db) == 150
    assert "Application shutdown complete" in server.log.read_text()


def test_a_killed_writer_loses_nothing_the_workers_hold(tmp_path, master_key):
    server = serve(tmp_path, master_key)
    try:
        before, _ = beacon_each_worker(server, 20)
        assert before == 20
        wait_for(lambda: stored(server.db) == 20)  # committed: not the writer's to lose
        (writer,) = [p for p, cmd in children(server.proc.pid).items() if "writer_process" in cmd]
        os.kill(writer, signal.SIGKILL)
        # while it is down and restarted: still 202, held by the workers
        during, pids = beacon_each_worker(server, 40)
        assert during == 40 and len(pids) == 2
        wait_for(lambda: stored(server.db) == 60)  # delivered to the new writer
        assert writer not in children(server.proc.pid)
    finally:
        assert server.stop() == 0
    assert stored(server.db) == 60
    assert "starting it again" in server.log.read_text()


def test_a_bad_frame_is_refused_and_counted_and_the_writer_keeps_serving(tmp_path, master_key):
    server = serve(tmp_path, master_key)
    path = server.data / "veil-serve" / "writer.sock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    try:
        for junk in (
            b"GET / HTTP/1.1\r\n\r\n",  # not a frame: its "length" is far too large
            framed(b"Ixyz"),  # an items frame whose payload marshal cannot read
            framed(b"I" + marshal.dumps(5)),  # a payload that is not (items, drops)
        ):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(path))
                s.sendall(junk)
                assert s.recv(100) == b""  # closed, unanswered
        accepted, _ = beacon_each_worker(server, 10)
        assert accepted == 10  # which workers took them is the kernel's choice
        wait_for(lambda: stored(server.db) == 10)
    finally:
        assert server.stop() == 0
    assert drops(server.db).get("invalid_frame") == 3
    assert stored(server.db) == 10


def test_a_stalled_writer_fills_the_workers_queues_and_their_drops_reach_the_store(
    tmp_path, master_key
):
    server = serve(tmp_path, master_key, "[capture]\nqueue_size = 20\nbatch_size = 10\n")
    (writer,) = [p for p, cmd in children(server.proc.pid).items() if "writer_process" in cmd]
    try:
        os.kill(writer, signal.SIGSTOP)  # takes nothing more: the workers' queues fill up
        statuses = [beacon_each_worker(server, 1)[0] for _ in range(120)]
        accepted = sum(statuses)
        assert 0 < accepted < 120  # 202 while a worker's queue had room, 503 once full
    finally:
        os.kill(writer, signal.SIGCONT)
        assert server.stop() == 0
    # every 202 stored; every 503 counted, by the writer, as queue_full
    assert stored(server.db) == accepted
    assert drops(server.db).get("queue_full") == 120 - accepted
