"""Beacon ingest over real HTTP: `veil serve` vs a bare Starlette endpoint, side by side.

For each uvicorn setting (h11 on asyncio; httptools on uvloop) and each worker count (1, 2),
two servers run under the same settings, each a supervisor that binds the port and N uvicorn
worker processes accepting on it, no access log:

- veil: `veil serve --workers N --loop L --http H` (the real collector: N HTTP workers parse,
  validate, rate-limit and enqueue; they forward to one writer process, which pipelines and
  commits to SQLite);
- bare: N workers of a Starlette app whose `POST /veil/e` reads the body and answers 202.

The load generator is `wrk` (Debian package `wrk`), keep-alive, 1 thread, replaying 2,048
precomputed browser-like beacons (Lua script written to the temp dir): ~200 Zipf-distributed
user-agents (bench/traffic.py, 3 bots among them), varied X-Forwarded-For addresses (the
collector trusts 127.0.0.1 as its reverse proxy), languages and screens, with the headers
Chromium's sendBeacon sends. Rounds alternate the order (bare, veil / veil, bare) so drift
hits both; after every veil round the script waits until veil's queues are empty, so veil's
deferred writer work never lands in the bare's round. Throughput is beacons accepted (2xx)
per second, the median over rounds; a beacon veil refuses (503, queue full) is not counted.
"CPU/beacon" is the user+system time of all the server's processes (supervisor, workers,
veil's writer) over the round plus the drain, divided by the 2xx answers.

The ingest rate limit is raised to 1e9/s (burst 1e9): the default per-network limiter
(20/s, burst 200 per /24, per worker process) would answer 429 to a load test from few
networks. At the end of each setting veil is stopped (SIGINT: the workers hand over, the
writer flushes) and its SQLite file is read: rows in the `events` view plus pipeline drops
must account for every 2xx wrk counted, give or take the requests in flight when wrk stopped.
Needs `wrk` (apt-get install wrk).

    .venv/bin/python bench/ingest_http.py [--rounds 2] [--seconds 3] [--connections 32]
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
from procs import cpu_seconds, descendants, free_port, tree_cpu, wait_listening  # noqa: E402

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


# -- the bare server (run in its own processes by this same script) ---------------------------


def bare_app():
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def ingest(request: Request) -> Response:
        await request.body()
        return Response(status_code=202)

    return Starlette(routes=[Route("/veil/e", ingest, methods=["POST"])])


def serve_bare(port: int, workers: int, loop: str, http: str) -> None:
    """As `veil serve` does it: bind here, N uvicorn workers accept on the socket."""
    listener = socket.create_server(("127.0.0.1", port), backlog=2048)
    fd = str(listener.fileno())
    cmd = [sys.executable, __file__, "--bare-worker", fd, "--loop", loop, "--http", http]
    procs = [subprocess.Popen(cmd, pass_fds=(listener.fileno(),)) for _ in range(workers)]
    signal.signal(signal.SIGINT, lambda *_: [p.send_signal(signal.SIGINT) for p in procs])
    for p in procs:
        p.wait()


def bare_worker(fd: int, loop: str, http: str) -> None:
    import uvicorn

    config = uvicorn.Config(
        bare_app(), loop=loop, http=http, access_log=False, proxy_headers=False, log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


# -- helpers ------------------------------------------------------------------------------------


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

SETTINGS = (("h11", "asyncio", "h11"), ("uvloop+httptools", "uvloop", "httptools"))


def writer_pid(pid: int) -> int | None:
    """veil's writer process among the supervisor's children."""
    for child in descendants(pid):
        if b"writer_process" in Path(f"/proc/{child}/cmdline").read_bytes():
            return child
    return None


def start(
    cmd: list[str], tmp: Path, name: str, env: dict[str, str]
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = tmp / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [a.replace("{port}", str(port)) for a in cmd],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    wait_listening(port, proc, log)
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_quiet(port: int, timeout: float = 15.0) -> None:
    """Until veil holds nothing, seen by several workers in a row (new connections)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 4 and time.monotonic() < deadline:
        quiet = quiet + 1 if healthz(port)["queued"] == 0 else 0
        time.sleep(0.05)


def measure(
    args: argparse.Namespace,
    tmp: Path,
    script: Path,
    env: dict[str, str],
    loop: str,
    http: str,
    workers: int,
) -> dict:
    run = tmp / f"{loop}-{http}-{workers}"
    run.mkdir()
    (run / "veil.toml").write_text(
        '[store]\nurl = "sqlite:///veil.db"\n[keys]\npath = "keys.db"\n'
        '[proxy]\ntrusted = ["127.0.0.1"]\n'
        "[ingest]\nrate = 1e9\nburst = 1000000000\n"
    )
    common = ["--loop", loop, "--http", http]
    cmds = {
        "bare": [
            sys.executable,
            __file__,
            "--serve-bare",
            "{port}",
            "--workers",
            str(workers),
            *common,
        ],
        "veil": [
            sys.executable,
            "-m",
            "veil_collector.cli",
            "serve",
            "--config",
            str(run / "veil.toml"),
            "--port",
            "{port}",
            "--workers",
            str(workers),
            *common,
        ],
    }
    servers = {name: start(cmd, run, name, env) for name, cmd in cmds.items()}
    results: dict[str, list[dict]] = {"bare": [], "veil": []}
    ok = refused = runs = 0
    try:
        for r in range(-1, args.rounds):  # round -1: warm-up
            order = ("bare", "veil") if r % 2 == 0 else ("veil", "bare")
            for name in order:
                proc, port = servers[name]
                cpu0 = tree_cpu(proc.pid)
                writer = writer_pid(proc.pid) if name == "veil" else None
                writer0 = cpu_seconds(writer) if writer else 0.0
                res = run_wrk(
                    port, script, args.warmup if r < 0 else args.seconds, args.connections
                )
                if name == "veil":
                    wait_quiet(port)
                    ok += res["requests"] - res["status"]
                    refused += res["status"]
                    runs += 1
                res["cpu"] = tree_cpu(proc.pid) - cpu0
                res["writer_cpu"] = cpu_seconds(writer) - writer0 if writer else 0.0
                res["ok"] = res["requests"] - res["status"]
                res["ok_rps"] = res["ok"] / (res["duration_us"] / 1e6)
                if r >= 0:
                    results[name].append(res)
    finally:
        for proc, _ in servers.values():
            stop(proc)
    db = sqlite3.connect(run / "veil.db")
    (stored,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
    drops = dict(db.execute("SELECT reason, SUM(count) FROM drops GROUP BY reason"))
    db.close()
    queue_full = drops.pop("queue_full", 0)
    accepted = stored + sum(drops.values())
    late = accepted - ok
    return {
        "results": results,
        "check": 0 <= late <= runs * args.connections and queue_full >= refused,
        "stored": stored,
        "accepted_wrk": ok,
        "accepted_db": accepted,
        "refused": refused,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=3, help="per server per round")
    ap.add_argument("--warmup", type=int, default=1, help="per server, not counted")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", default="1,2", help="worker counts to measure")
    ap.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--bare-worker", type=int, metavar="FD", help=argparse.SUPPRESS)
    ap.add_argument("--loop", default="uvloop", help=argparse.SUPPRESS)
    ap.add_argument("--http", default="httptools", help=argparse.SUPPRESS)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (SQLite files, logs)")
    args = ap.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, int(args.workers), args.loop, args.http)
        return 0
    if args.bare_worker is not None:
        bare_worker(args.bare_worker, args.loop, args.http)
        return 0
    if subprocess.run(["which", "wrk"], capture_output=True).returncode:
        raise SystemExit("wrk not found: apt-get install wrk")

    tmp = Path(tempfile.mkdtemp(prefix="veil-ingest-"))
    script = tmp / "beacons.lua"
    script.write_text(wrk_script(beacons(N_REQUESTS, SEED)))
    env = {**os.environ, "VEIL_MASTER_KEY": MASTER_KEY}
    env.pop("VEIL_CONFIG", None)
    counts = [int(w) for w in args.workers.split(",")]
    print(
        f"veil serve vs bare Starlette, same uvicorn settings; wrk -t1 -c{args.connections} "
        f"keep-alive, {args.rounds} rounds x {args.seconds} s per server, {os.cpu_count()} CPUs; "
        "ingest rate limit raised to 1e9/s\n"
    )
    print(
        f"{'setting':<18}{'workers':>8}{'bare 2xx/s':>11}{'veil 2xx/s':>11}{'ratio':>7}"
        f"{'bare CPU/b':>11}{'veil CPU/b':>11}{'CPU ratio':>10}{'veil p99':>9}{'writer':>10}"
        "  stored"
    )
    good = True
    try:
        for label, loop, http in SETTINGS:
            for workers in counts:
                m = measure(args, tmp, script, env, loop, http, workers)
                res = m["results"]

                def med(name: str, key: str, res: dict = res) -> float:
                    return statistics.median(x[key] for x in res[name])

                def cpu(name: str, res: dict = res, key: str = "cpu") -> float:
                    return statistics.median(x[key] / max(x["ok"], 1) * 1e6 for x in res[name])

                good &= m["check"]
                print(
                    f"{label:<18}{workers:>8}{med('bare', 'ok_rps'):>11,.0f}"
                    f"{med('veil', 'ok_rps'):>11,.0f}"
                    f"{med('veil', 'ok_rps') / med('bare', 'ok_rps'):>7.3f}"
                    f"{cpu('bare'):>8.0f} us{cpu('veil'):>8.0f} us"
                    f"{cpu('veil') / cpu('bare'):>10.2f}{med('veil', 'p99_us') / 1000:>6.1f} ms"
                    f"{cpu('veil', key='writer_cpu'):>7.0f} us"
                    f"  {m['stored']:,} rows, {m['accepted_db']:,} accepted vs "
                    f"{m['accepted_wrk']:,} 2xx ({m['refused']} 503): "
                    f"{'OK' if m['check'] else 'MISMATCH'}",
                    flush=True,
                )
        print(
            "\nratio = veil / bare beacons/s (medians), goal >= 0.8; CPU ratio = veil / bare CPU "
            "per beacon, goal <= 1.3; writer = the writer process's part of veil's CPU per "
            "beacon (intake, pipeline, SQLite)"
        )
        return 0 if good else 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
