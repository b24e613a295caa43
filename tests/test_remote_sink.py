"""The middleware forwarding to a real collector process that is killed and restarted."""

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from veil import StoreError, Veil, VeilMiddleware
from veil.config import from_dict
from veil.store import RemoteStore

from conftest import CHROME, FIREFOX, scope

SECRET = "r" * 48


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """`veil serve` in its own process, on a fixed port, startable again after a kill."""

    def __init__(self, tmp: Path, master_key: str) -> None:
        self.port = free_port()
        self.config = tmp / "collector.toml"
        self.config.write_text('[store]\nurl = "sqlite:///collector-data/veil.db"\n'
                               '[keys]\npath = "collector-data/keys.db"\n')
        self.db = tmp / "collector-data" / "veil.db"
        self.env = {**os.environ, "VEIL_REMOTE_SECRET": SECRET, "VEIL_MASTER_KEY": master_key}
        self.log = tmp / "collector.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "veil_collector.cli", "serve", "--port", str(self.port),
                 "--config", str(self.config)], env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, \
                    self.log.read_text()
                time.sleep(0.05)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=20)

    def counts(self) -> tuple[int, int]:
        db = sqlite3.connect(self.db)
        try:
            return db.execute("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM event_log "
                              "WHERE source = 'request'").fetchone()
        finally:
            db.close()


@pytest.fixture
def collector(tmp_path, master_key):
    c = Collector(tmp_path, master_key)
    c.start()
    yield c
    c.stop()


def app_config(tmp_path: Path, port: int, **capture):
    return from_dict({"keys": {"path": "app-keys.db"},
                      "remote": {"url": f"http://127.0.0.1:{port}/veil/batch",
                                 "shutdown_grace": 2.0},
                      "capture": {"batch_size": 25, "flush_interval": 0.05, **capture}},
                     base=tmp_path)


async def send(app, n: int, offset: int) -> None:
    async def ok(message):
        pass

    for i in range(n):
        ip = f"198.51.{100 + (offset + i) // 250}.{(offset + i) % 250 + 1}"
        await app(scope(client=(ip, 40000 + i), headers={"User-Agent": (CHROME, FIREFOX)[i % 2]}),
                  None, ok)
        await asyncio.sleep(0.002)


async def hello(s, receive, send_):
    await send_({"type": "http.response.start", "status": 204, "headers": []})
    await send_({"type": "http.response.body", "body": b""})


async def test_killing_and_restarting_the_collector_loses_nothing_and_duplicates_nothing(
        collector, tmp_path, monkeypatch):
    monkeypatch.setenv("VEIL_REMOTE_SECRET", SECRET)
    veil = Veil(app_config(tmp_path, collector.port))
    app = VeilMiddleware(hello, veil=veil)
    await veil.start()
    await send(app, 150, 0)
    await asyncio.sleep(0.3)
    collector.kill()  # mid-stream: batches in flight fail and are retried
    await send(app, 150, 150)
    await asyncio.to_thread(collector.start)
    await send(app, 150, 300)
    await veil.stop()
    assert collector.counts() == (450, 450)
    assert veil.stats().dropped == {}
    assert not (tmp_path / "veil-data").exists()  # the app kept no local event store


async def test_with_the_collector_gone_for_good_drops_are_counted_and_bounded(
        tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("VEIL_REMOTE_SECRET", SECRET)
    veil = Veil(app_config(tmp_path, free_port(), queue_size=40))
    app = VeilMiddleware(hello, veil=veil)
    await veil.start()
    await send(app, 200, 0)
    await veil.stop()  # gives up after remote.shutdown_grace
    dropped = veil.stats().dropped
    assert dropped["queue_full"] > 0 and dropped["store_error"] > 0
    assert dropped["queue_full"] + dropped["store_error"] == 200
    assert "collector unreachable" in caplog.text


def test_a_remote_store_without_a_secret_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("VEIL_REMOTE_SECRET", raising=False)
    with pytest.raises(StoreError, match="no shared secret"):
        RemoteStore(app_config(tmp_path, 1).remote)
