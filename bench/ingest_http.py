"""Beacon ingest over real HTTP: veil's collector vs a bare Starlette endpoint, same run.

Two server processes, each `uvicorn` with one worker, no access log, the same uvicorn
defaults (whatever `--loop auto --http auto` picks in this venv; printed below):

- veil: `veil serve --config veil.toml` (the real collector: `POST /veil/e` validates the
  beacon, rate-limits, queues it; the writer pipelines and commits to SQLite in the same
  process);
- bare: a Starlette app whose `POST /veil/e` reads the body and answers 202, nothing else.

The load generator is `wrk` (Debian package `wrk`) in a third process, keep-alive, 1 thread,
replaying 2,048 precomputed browser-like beacons (Lua script written to the temp dir): ~200
Zipf-distributed user-agents (bench/traffic.py, 3 bots among them), varied X-Forwarded-For
addresses (the collector trusts 127.0.0.1 as its reverse proxy), languages and screens, with
the headers Chromium's sendBeacon sends. Rounds alternate the order (bare, veil / veil, bare)
so drift hits both; after every veil round the script waits until veil's queue is empty, so
veil's deferred writer work never lands in the bare's round. Throughput is beacons accepted
(2xx) per second, the median over rounds; a beacon veil refuses (503, capture queue full) is
shown apart and not counted. "CPU/answer" is the server process's user+system time (all
threads, writer and SQLite included) over the round plus the drain, divided by the answers.

The ingest rate limit is raised to 1e9/s (burst 1e9): the default per-network limiter
(20/s, burst 200 per /24) would otherwise answer 429 to a load test from few networks.

At the end the collector is stopped (SIGINT: lifespan flush) and its SQLite file is read:
rows with source='beacon' plus pipeline drops (bots, by design) must account for every 2xx
wrk counted, and the `queue_full` drops for every 503, give or take the requests in flight
when wrk stopped (at most one per connection per run). Needs `wrk` (apt-get install wrk).

    .venv/bin/python bench/ingest_http.py [--rounds 4] [--seconds 8] [--connections 50]
"""

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import traffic  # noqa: E402  (bench/ helper, read-only)

SEED = 3
N_REQUESTS = 2048  # distinct precomputed beacons wrk cycles through
MASTER_KEY = "5e" * 32
SCREENS = [
    (1920, 1080, 1),
    (1366, 768, 1),
    (1536, 864, 1.25),
    (1440, 900, 2),
    (390, 844, 3),
    (414, 896, 2),
    (1280, 800, 2),
    (2560, 1440, 1),
    (360, 800, 3),
    (768, 1024, 2),
    (1280, 720, 1.5),
    (393, 873, 2.75),
]
LANGUAGES = ["en-US", "de-DE", "fr-FR", "ja", "es-ES", "pt-BR", "de-CH", "zh-CN", "en-GB"]
TICK = os.sysconf("SC_CLK_TCK")


# -- the bare server (run in its own process by this same script) ----------------------------


def serve_bare(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def ingest(request: Request) -> Response:
        await request.body()
        return Response(status_code=202)

    app = Starlette(routes=[Route("/veil/e", ingest, methods=["POST"])])
    uvicorn.run(
        app, host="127.0.0.1", port=port, access_log=False, proxy_headers=False, log_level="warning"
    )


# -- helpers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
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


def healthz(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return json.loads(r.read())


def wait_drained(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while healthz(port)["queued"] and time.monotonic() < deadline:
        time.sleep(0.05)


def lua_str(s: str) -> str:
    assert s.isascii() and s.isprintable(), s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def beacons(n: int, seed: int) -> list[tuple[dict[str, str], str]]:
    """`n` (headers, body) pairs as Chromium's sendBeacon sends them, deterministic."""
    rng = random.Random(seed)
    agents = traffic.user_agents(200)
    picked = rng.choices(agents, weights=traffic.zipf_weights(len(agents)), k=n)
    out = []
    for agent in picked:
        w, h, ratio = rng.choice(SCREENS)
        body = json.dumps(
            {"screen_w": w, "screen_h": h, "pixel_ratio": ratio, "language": rng.choice(LANGUAGES)},
            separators=(",", ":"),
        )
        headers = {
            "Host": "collector.example.org",
            "User-Agent": agent.decode(),
            "Content-Type": "text/plain;charset=UTF-8",
            "Accept": "*/*",
            "Origin": "https://shop.example.org",
            "Referer": "https://shop.example.org/",
            "Sec-Fetch-Site": "same-site",
            "Sec-Fetch-Mode": "no-cors",
            "Sec-Fetch-Dest": "empty",
            "Accept-Encoding": "gzip, deflate, br",
            "X-Forwarded-For": traffic.client_ip(rng),
            "X-Forwarded-Proto": "https",
        }
        if lang := rng.choice(traffic.ACCEPT_LANGUAGES):
            headers["Accept-Language"] = lang.decode()
        if rng.random() < 0.05:
            headers["Sec-GPC"] = "1"
        out.append((headers, body))
    return out


def wrk_script(requests: list[tuple[dict[str, str], str]]) -> str:
    lines = ["local reqs = {}", "local i = 0", "init = function(args)"]
    for headers, body in requests:
        h = ", ".join(f"[{lua_str(k)}] = {lua_str(v)}" for k, v in headers.items())
        lines.append(f'  reqs[#reqs + 1] = wrk.format("POST", "/veil/e", {{{h}}}, {lua_str(body)})')
    lines += [
        "end",
        "request = function() i = i % #reqs + 1; return reqs[i] end",
        "done = function(summary, latency, requests)",
        '  io.write(string.format("RESULT {\\"requests\\":%d,\\"duration_us\\":%d,'
        '\\"status\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"timeout\\":%d,'
        '\\"p50_us\\":%d,\\"p99_us\\":%d}\\n", summary.requests, summary.duration, '
        "summary.errors.status, summary.errors.connect, summary.errors.read, "
        "summary.errors.write, summary.errors.timeout, latency:percentile(50), "
        "latency:percentile(99)))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def run_wrk(port: int, script: Path, seconds: float, connections: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/veil/e",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"^RESULT (.*)$", out, re.M)
    if m is None:
        raise SystemExit(f"wrk printed no result:\n{out}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["wrk_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r["errors"] = r["status"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def http_impl() -> str:
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"loop={loop}, http={http}"


# -- the benchmark ------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=8, help="per server per round")
    ap.add_argument("--warmup", type=int, default=2, help="per server, not counted")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (SQLite files, logs)")
    args = ap.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    if subprocess.run(["which", "wrk"], capture_output=True).returncode:
        raise SystemExit("wrk not found: apt-get install wrk")

    tmp = Path(tempfile.mkdtemp(prefix="veil-ingest-"))
    (tmp / "veil.toml").write_text(
        '[store]\nurl = "sqlite:///veil.db"\n[keys]\npath = "keys.db"\n'
        '[proxy]\ntrusted = ["127.0.0.1"]\n'
        "[ingest]\nrate = 1e9\nburst = 1000000000\n"
    )
    script = tmp / "beacons.lua"
    script.write_text(wrk_script(beacons(N_REQUESTS, SEED)))
    env = {**os.environ, "VEIL_MASTER_KEY": MASTER_KEY}
    env.pop("VEIL_CONFIG", None)

    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    cmds = {
        "bare": [sys.executable, __file__, "--serve-bare", "{port}"],
        "veil": [
            sys.executable,
            "-m",
            "veil_collector.cli",
            "serve",
            "--config",
            str(tmp / "veil.toml"),
            "--port",
            "{port}",
        ],
    }
    try:
        for name, cmd in cmds.items():
            port = free_port()
            log = tmp / f"{name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [a.replace("{port}", str(port)) for a in cmd],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=tmp,
                )
            wait_listening(port, proc, log)
            servers[name] = (proc, port)

        print(
            f"veil ingest over HTTP: uvicorn 1 worker ({http_impl()}), wrk -t1 "
            f"-c{args.connections} keep-alive, {args.rounds} rounds x {args.seconds:g} s per "
            f"server, {os.cpu_count()} CPUs; ingest rate limit raised to 1e9/s for the test"
        )
        results: dict[str, list[dict]] = {"bare": [], "veil": []}
        wrk_ok = {"bare": 0, "veil": 0}  # 2xx answers wrk counted, warm-up included
        wrk_refused = {"bare": 0, "veil": 0}  # other statuses (veil: 503 queue full)
        runs = 0  # veil's wrk runs, warm-up included
        for r in range(-1, args.rounds):  # round -1: warm-up
            order = ("bare", "veil") if r % 2 == 0 else ("veil", "bare")
            for name in order:
                proc, port = servers[name]
                cpu0 = cpu_seconds(proc.pid)
                loop0 = cpu_seconds(proc.pid, f"/task/{proc.pid}")  # the event loop's thread
                res = run_wrk(
                    port, script, args.warmup if r < 0 else args.seconds, args.connections
                )
                if name == "veil":
                    wait_drained(port)
                res["server_cpu"] = cpu_seconds(proc.pid) - cpu0
                res["loop_cpu"] = cpu_seconds(proc.pid, f"/task/{proc.pid}") - loop0
                seconds = res["duration_us"] / 1e6
                res["ok"] = res["requests"] - res["status"]
                res["ok_rps"] = res["ok"] / seconds
                res["refused_rps"] = res["status"] / seconds
                wrk_ok[name] += res["ok"]
                wrk_refused[name] += res["status"]
                runs += name == "veil"
                if r >= 0:
                    results[name].append(res)

        def med(name: str, key: str) -> float:
            return statistics.median(x[key] for x in results[name])

        def per_answer(x: dict, key: str = "server_cpu") -> float:
            return x[key] / x["requests"] * 1e6

        print(
            "\nbeacons/s = 2xx answers per second; a refused beacon (503 queue full) is not "
            "counted\n"
        )
        print(
            f"{'round':<6}{'bare 2xx/s':>11}{'veil 2xx/s':>11}{'veil 503/s':>11}{'ratio':>7}"
            f"{'bare CPU/answer':>17}{'veil CPU/answer':>17}"
        )
        ratios = []
        for i, (b, v) in enumerate(zip(results["bare"], results["veil"], strict=True)):
            ratios.append(v["ok_rps"] / b["ok_rps"])
            print(
                f"{i + 1:<6}{b['ok_rps']:>11,.0f}{v['ok_rps']:>11,.0f}{v['refused_rps']:>11,.0f}"
                f"{ratios[-1]:>7.3f}{per_answer(b):>14.0f} us{per_answer(v):>14.0f} us"
            )
        print()
        print(
            f"{'server':<7}{'2xx/s':>8}{'non-2xx':>9}{'sock err':>9}{'p50 ms':>8}{'p99 ms':>8}"
            f"{'CPU/answer':>12}{'wrk CPU':>9}"
        )
        for name in ("bare", "veil"):
            wcpu = statistics.median(x["wrk_cpu"] / (x["duration_us"] / 1e6) for x in results[name])
            sock = sum(x["errors"] - x["status"] for x in results[name])
            print(
                f"{name:<7}{med(name, 'ok_rps'):>8,.0f}"
                f"{sum(x['status'] for x in results[name]):>9,}{sock:>9,}"
                f"{med(name, 'p50_us') / 1000:>8.1f}{med(name, 'p99_us') / 1000:>8.1f}"
                f"{statistics.median(per_answer(x) for x in results[name]):>9.0f} us"
                f"{wcpu:>9.0%}"
            )
        loop = statistics.median(per_answer(x, "loop_cpu") for x in results["veil"])
        other = statistics.median(
            per_answer(x) - per_answer(x, "loop_cpu") for x in results["veil"]
        )
        print(
            f"veil CPU per answer by thread: event loop {loop:.0f} us (HTTP, endpoint, "
            f"pipeline, SQLite writes), other threads {other:.0f} us"
        )
        ratio = med("veil", "ok_rps") / med("bare", "ok_rps")
        print(
            f"\nveil / bare beacons/s (medians): {ratio:.3f}   per-round: min {min(ratios):.3f},"
            f" median {statistics.median(ratios):.3f}, max {max(ratios):.3f}   goal >= 0.8: "
            f"{'met' if ratio >= 0.8 else 'NOT met'}"
        )

        # -- did veil store them? -----------------------------------------------------------
        proc, port = servers.pop("veil")
        proc.send_signal(signal.SIGINT)  # lifespan shutdown flushes the queue
        proc.wait(timeout=60)
        db = sqlite3.connect(tmp / "veil.db")
        (stored,) = db.execute("SELECT COUNT(*) FROM event_log WHERE source='beacon'").fetchone()
        drops = dict(db.execute("SELECT reason, SUM(count) FROM drops GROUP BY reason"))
        db.close()
        refused = drops.get("queue_full", 0) + drops.get("capture_error", 0)  # answered 503
        accepted = stored + sum(drops.values()) - refused  # answered 202: stored or dropped
        late = (accepted - wrk_ok["veil"]) + (refused - wrk_refused["veil"])
        ok = (
            accepted >= wrk_ok["veil"]
            and refused >= wrk_refused["veil"]
            and late <= runs * args.connections
        )
        print(f"\nveil's SQLite after shutdown: {stored:,} beacon rows; drops {drops or 'none'}")
        print(
            f"  accepted (rows + pipeline drops) {accepted:,} vs {wrk_ok['veil']:,} 2xx counted "
            f"by wrk; refused (queue_full) {refused:,} vs {wrk_refused['veil']:,} non-2xx; "
            f"{late} answered after wrk stopped counting (<= {args.connections} connections x "
            f"{runs} runs, warm-up included): {'OK' if ok else 'MISMATCH'}"
        )
        return 0 if ok else 1
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
