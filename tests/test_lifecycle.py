"""Never acknowledge what cannot be stored: veil's open failures, permanent and transient.

A wrong master key for an existing keystore, or a policy changed without a new version, is
permanent: `veil serve` refuses to start (one line, non-zero exit); an app with the middleware
keeps serving its own routes while veil's endpoints answer 503 and requests are counted, not
queued. A transient failure (the data directory not there yet) is retried: requests wait in
the bounded buffer, beacons get 503 until the store opens, then everything is written.
"""

import asyncio
import copy
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from policies import GUARDED
from servers import ROOT, ServerProcess, free_port
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import veil.runtime
from veil import KeyStoreError, StoreError, Veil, VeilMiddleware
from veil.config import load
from veil.policy import DEFAULT_POLICY
from veil.starter import render_policy
from veil.store import SQLiteStore
from veil.store.keys import KeyStore

from conftest import CHROME, rows

BEACON = json.dumps(
    {"screen_w": 1280, "screen_h": 800, "pixel_ratio": 2, "language": "en"}
).encode()
TEXT = {"Content-Type": "text/plain", "User-Agent": CHROME}


def config_file(directory: Path, policy: str = "") -> Path:
    path = directory / "veil.toml"
    path.write_text(
        '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
        "[capture]\nflush_interval = 0.05\n" + policy
    )
    return path


def make_keystore(cfg: Path) -> None:
    """The keystore exists, under the master key the test's environment holds."""
    KeyStore.open(load(cfg).keys).close()


def run_serve_until_exit(cfg: Path, env: dict[str, str]) -> tuple[int, str, list[int]]:
    """`veil serve`, beaconed at the whole time it lives: (exit code, output, statuses)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "veil_collector.cli",
            "serve",
            "--port",
            str(port),
            "--config",
            str(cfg),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    statuses: list[int] = []
    deadline = time.monotonic() + 30
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                statuses.append(
                    httpx.post(
                        f"http://127.0.0.1:{port}/veil/e", content=BEACON, headers=TEXT, timeout=1
                    ).status_code
                )
            except httpx.TransportError:
                time.sleep(0.02)
    finally:
        if proc.poll() is None:  # still up after 30 s: it did not refuse; fail below
            proc.kill()
        out = proc.communicate(timeout=10)[0]
    return proc.returncode, out, statuses


def test_veil_serve_refuses_to_start_with_a_wrong_master_key(tmp_path):
    cfg = config_file(tmp_path)
    make_keystore(cfg)
    wrong = secrets.token_hex(32)
    code, out, statuses = run_serve_until_exit(cfg, {**os.environ, "VEIL_MASTER_KEY": wrong})
    assert code == 1, out
    assert 202 not in statuses
    problem = [line for line in out.splitlines() if "veil cannot start" in line]
    assert len(problem) == 1, out
    assert "the master key does not match the keystore" in problem[0]
    assert "Traceback" not in out and wrong not in out


def test_veil_serve_refuses_a_policy_changed_without_a_version_bump(tmp_path):
    policy = render_policy(DEFAULT_POLICY)
    cfg = config_file(tmp_path, policy)

    async def first_start() -> None:  # the store remembers version 1.0 as it was
        store = SQLiteStore(load(cfg).store.path)
        await store.open(load(cfg).policy)
        await store.close()

    asyncio.run(first_start())
    connection = DEFAULT_POLICY.purposes["connection"].description
    changed = policy.replace(connection, connection + " and more", 1)
    assert changed != policy
    cfg = config_file(tmp_path, changed)
    code, out, statuses = run_serve_until_exit(cfg, dict(os.environ))
    assert code == 1, out
    assert 202 not in statuses
    problem = [line for line in out.splitlines() if "veil cannot start" in line]
    assert len(problem) == 1 and "policy.version" in problem[0], out
    assert "Traceback" not in out


HOST_APP = textwrap.dedent("""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from veil import Veil, VeilMiddleware

    veil = Veil.from_config()

    async def home(request):
        return PlainTextResponse("the app's own page", headers={"x-app": "1"})

    async def stats(request):
        s = veil.stats()
        return JSONResponse({"queued": s.queued, "running": s.running, "dropped": s.dropped})

    app = VeilMiddleware(Starlette(routes=[Route("/", home), Route("/stats", stats)]),
                         veil=veil)
""")


def test_an_app_with_a_wrong_master_key_serves_its_routes_and_veil_answers_503(tmp_path):
    cfg = config_file(tmp_path)
    make_keystore(cfg)
    (tmp_path / "host_app.py").write_text(HOST_APP)
    wrong = secrets.token_hex(32)
    env = {**os.environ, "VEIL_MASTER_KEY": wrong, "VEIL_CONFIG": str(cfg)}
    server = ServerProcess.app(
        "host_app:app", env, tmp_path / "server.log", app_dir=tmp_path
    ).start()
    try:
        with httpx.Client(base_url=server.url, headers={"User-Agent": CHROME}) as client:
            for _ in range(3):
                page = client.get("/")
                assert (page.status_code, page.text, page.headers["x-app"]) == (
                    200,
                    "the app's own page",
                    "1",
                )
            assert client.get("/veil/veil.js").status_code == 200  # static: no store needed
            for method, path, body in (
                ("POST", "/veil/e", BEACON),
                ("POST", "/veil/consent", b'{"grant": ["x"]}'),
                ("GET", "/veil/consent", None),
                ("POST", "/veil/record", b'{"purpose": "x"}'),
            ):
                r = client.request(method, path, content=body, headers=TEXT)
                assert r.status_code == 503, (path, r.text)
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json()["type"] == "urn:veil:problem:not-collecting"
                assert int(r.headers["Retry-After"]) > 0
            stats = client.get("/stats").json()
        # nothing piles up: the 3 page requests are counted, not queued (/stats itself is
        # captured once its status is known, after it read these numbers)
        assert stats == {"queued": 0, "running": False, "dropped": {"not_open": 3}}
    finally:
        assert server.stop() == 0
    log = (tmp_path / "server.log").read_text()
    problem = [line for line in log.splitlines() if "veil cannot open its store" in line]
    assert len(problem) == 1 and "master key does not match" in problem[0], log
    assert wrong not in log
    assert not (tmp_path / "data" / "veil.db").exists()  # nothing was, or could be, stored


async def hello(request):
    return PlainTextResponse("hi")


def wrap(veil: Veil) -> VeilMiddleware:
    return VeilMiddleware(Starlette(routes=[Route("/", hello)]), veil=veil)


def client(app, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.7", 5)),
        base_url="http://shop.example",
        headers={"User-Agent": CHROME},
        **kw,
    )


def stored(veil: Veil) -> list[tuple]:
    return rows(veil, "SELECT source, browser FROM event_rows ORDER BY source")


async def test_a_permanent_failure_raises_when_required_and_a_restart_recovers(
    make_config, monkeypatch, master_key, started
):
    cfg = make_config()
    KeyStore.open(cfg.keys).close()
    monkeypatch.setenv("VEIL_MASTER_KEY", secrets.token_hex(32))
    veil = Veil(cfg)
    with pytest.raises(KeyStoreError, match="master key does not match"):
        await veil.start(required=True)
    app = wrap(veil)
    async with client(app) as c:
        assert (await c.get("/")).text == "hi"
        r = await c.post("/veil/e", content=BEACON, headers=TEXT)
        assert r.status_code == 503 and r.headers["Retry-After"] == "300"
    assert veil.stats().dropped == {"not_open": 1} and len(veil.buffer) == 0
    await veil.stop()
    # the operator fixes the key and the app restarts (a new lifespan): veil opens
    monkeypatch.setenv("VEIL_MASTER_KEY", master_key)
    await started(veil, required=True)
    async with client(app) as c:
        await c.get("/")
        assert (await c.post("/veil/e", content=BEACON, headers=TEXT)).status_code == 202
    await veil.stop()
    assert stored(veil) == [("beacon", "Chrome"), ("request", "Chrome")]


async def test_a_policy_changed_without_a_new_version_is_permanent(make_config, started):
    v = await started(Veil(make_config(policy=GUARDED)))
    assert v.is_open
    await v.stop()
    changed = copy.deepcopy(GUARDED)
    changed["purposes"]["care"]["description"] = "Provide care, and more"  # same version
    v = Veil(make_config(policy=changed))
    with pytest.raises(StoreError, match=r"policy\.version"):
        await v.start(required=True)
    assert not v.is_open and v.failure is not None


async def test_a_transient_failure_queues_bounded_answers_503_then_writes_all(
    make_config, tmp_path, monkeypatch, started
):
    monkeypatch.setattr(veil.runtime, "RETRY_OPEN_SECONDS", 0.05)
    blocker = tmp_path / "mount"
    blocker.write_text("")  # the store's directory cannot be made yet: an I/O error
    v = await started(Veil(make_config(store={"url": f"sqlite:///{blocker}/veil.db"})))
    async with client(wrap(v)) as c:
        r = await c.post("/veil/e", content=BEACON, headers=TEXT)
        assert r.status_code == 503 and r.json()["type"] == "urn:veil:problem:not-ready"
        assert r.headers["Retry-After"] == "5"
        await c.get("/")  # captured meanwhile, in the bounded buffer
        assert len(v.buffer) == 1 and v.failure is None
        blocker.unlink()  # the volume is there now
        for _ in range(200):
            if v.is_open:
                break
            await asyncio.sleep(0.02)
        assert (await c.post("/veil/e", content=BEACON, headers=TEXT)).status_code == 202
    await v.stop()
    assert stored(v) == [("beacon", "Chrome"), ("request", "Chrome")]


async def test_the_first_beacon_of_an_app_without_lifespan_is_stored(make_config):
    v = Veil(make_config())
    async with client(wrap(v)) as c:  # no lifespan: the beacon starts veil and waits for it
        assert (await c.post("/veil/e", content=BEACON, headers=TEXT)).status_code == 202
    await v.stop()
    assert stored(v) == [("beacon", "Chrome")]


def test_permanent_and_transient_failures_are_told_apart(tmp_path):
    with pytest.raises(KeyStoreError) as wrong_key:
        raise_from(KeyStoreError("the master key does not match"), ValueError("tag"))
    assert veil.runtime.is_permanent(wrong_key.value)
    for cause in (
        OSError("No such file or directory"),
        sqlite3.OperationalError("database is locked"),
    ):
        with pytest.raises(StoreError) as io_error:
            raise_from(StoreError("store.url: cannot open"), cause)
        assert not veil.runtime.is_permanent(io_error.value)
    with pytest.raises(KeyStoreError) as locked:
        raise_from(
            KeyStoreError("keys.path: cannot open keystore"),
            sqlite3.OperationalError("database is locked"),
        )
    assert not veil.runtime.is_permanent(locked.value)
    with pytest.raises(KeyStoreError) as no_key_file:  # a config problem: the operator's
        raise_from(KeyStoreError("keys.master_key_file: cannot read"), FileNotFoundError())
    assert veil.runtime.is_permanent(no_key_file.value)
    assert veil.runtime.is_permanent(StoreError("policy.version: the policy changed"))
    assert not veil.runtime.is_permanent(RuntimeError("unexpected"))


def raise_from(error: Exception, cause: Exception) -> None:
    """Raise `error` the way keys.py and store/sqlite.py do: inside `except`, `from None`."""
    try:
        raise cause
    except type(cause):
        raise error from None
