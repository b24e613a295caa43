"""The middleware forwarding to a real collector process that is killed and restarted."""

import asyncio
from pathlib import Path

import pytest
from servers import free_port

from veil import StoreError, Veil, VeilMiddleware
from veil.config import from_dict
from veil.store import RemoteStore

from conftest import CHROME, FIREFOX, Collector, scope

SECRET = "r" * 48


@pytest.fixture
def collector(tmp_path, master_key):
    c = Collector(tmp_path, master_key, SECRET)
    c.start()
    yield c
    c.stop()


def app_config(tmp_path: Path, port: int, **capture):
    return from_dict(
        {
            "keys": {"path": "app-keys.db"},
            "remote": {"url": f"http://127.0.0.1:{port}/veil/batch", "shutdown_grace": 2.0},
            "capture": {"batch_size": 25, "flush_interval": 0.05, **capture},
        },
        base=tmp_path,
    )


async def send(app, n: int, offset: int) -> None:
    async def ok(message):
        pass

    for i in range(n):
        ip = f"198.51.{100 + (offset + i) // 250}.{(offset + i) % 250 + 1}"
        await app(
            scope(client=(ip, 40000 + i), headers={"User-Agent": (CHROME, FIREFOX)[i % 2]}),
            None,
            ok,
        )
        await asyncio.sleep(0.002)


async def hello(s, receive, send_):
    await send_({"type": "http.response.start", "status": 204, "headers": []})
    await send_({"type": "http.response.body", "body": b""})


async def test_killing_and_restarting_the_collector_loses_nothing_and_duplicates_nothing(
    collector, tmp_path, monkeypatch, started
):
    monkeypatch.setenv("VEIL_REMOTE_SECRET", SECRET)
    veil = Veil(app_config(tmp_path, collector.port))
    app = VeilMiddleware(hello, veil=veil)
    await started(veil)
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
    tmp_path, monkeypatch, caplog, started
):
    monkeypatch.setenv("VEIL_REMOTE_SECRET", SECRET)
    veil = Veil(app_config(tmp_path, free_port(), queue_size=40))
    app = VeilMiddleware(hello, veil=veil)
    await started(veil)
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
