"""Instructions per request: a bare Starlette app vs the same app behind VeilMiddleware.

Wall-clock figures on a shared machine are noise; instruction counts under callgrind are the
same whatever else runs, so they decide whether a change to the request path helps. One child
process under `valgrind --tool=callgrind` sets up both variants (imports, veil started, a
warm-up of each), then serves N requests through the bare app and N through the app with the
middleware. Callgrind dumps its counters, and zeroes them, whenever `getppid` is entered
(`--dump-before`); the child calls `os.getppid()` around each window and nothing else in the
process calls it, so the second and fourth dumps count exactly the two request loops.

The garbage collector is frozen after set-up (a full collection would otherwise land in one
window or the other depending on what set-up allocated) and reset before each window: a
window sees the collections its own requests cause, two in veil's, whose records stay queued
(one per request; a young collection every 700 allocations). The requests are direct ASGI
calls (no server, no sockets) with the realistic scopes of traffic.py, as in
middleware_overhead.py; they never yield to the loop, so veil's writer does not run in the
window: this is the request path only.

    .venv/bin/python bench/request_path_instructions.py      # needs valgrind; ~30-50 s
"""

import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

WARMUP = 200
N = 1400  # two young-generation collections in veil's window (threshold 700)


def run_child() -> None:
    """Warm both variants, then the two measured loops between `getppid` marks."""
    import traffic
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from veil import Veil, VeilMiddleware

    async def hello(request):
        return PlainTextResponse("hi")

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def discard(message):
        pass

    scopes = traffic.scopes(WARMUP + N, seed=7)
    warm, measured = scopes[:WARMUP], scopes[WARMUP:]

    async def serve(app, batch) -> None:
        for scope in batch:
            await app(dict(scope), receive, discard)

    async def main() -> None:
        cfg, _tmp = traffic.veil_config()
        veil = Veil(cfg)
        assert cfg.capture.queue_size >= WARMUP + N and gc.get_threshold()[0] == 700
        await veil.start()
        while not veil.stats().running:
            await asyncio.sleep(0.01)
        bare = Starlette(routes=[Route("/", hello)])
        with_veil = Starlette(
            routes=[Route("/", hello)], middleware=[Middleware(VeilMiddleware, veil=veil)]
        )
        await serve(bare, warm)
        await serve(with_veil, warm)
        gc.collect()
        gc.freeze()
        os.getppid()  # dump 1: start-up and warm-up
        await serve(bare, measured)
        os.getppid()  # dump 2: N bare requests
        gc.collect()
        os.getppid()  # dump 3: between the windows
        await serve(with_veil, measured)
        os.getppid()  # dump 4: N requests through the middleware
        assert len(veil.buffer) == WARMUP + N, "every request captured"
        os._exit(0)  # no teardown

    asyncio.run(main())


def dumps() -> list[int]:
    """Instructions counted in each dump, in order."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--dump-before=getppid",
                f"--callgrind-out-file={tmp}/out.%p",
                sys.executable,
                __file__,
                "child",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        if proc.returncode != 0:
            raise SystemExit(f"callgrind failed\n{proc.stderr[-3000:]}")
        counts = []
        for path in Path(tmp).iterdir():
            text = path.read_text()
            part = re.search(r"^part: (\d+)", text, re.M)
            total = re.search(r"^(?:totals|summary): (\d+)", text, re.M)
            if total:
                counts.append((int(part.group(1)) if part else 0, int(total.group(1))))
    return [total for _, total in sorted(counts)]


def main() -> None:
    counts = dumps()
    if len(counts) < 4:
        raise SystemExit(f"expected 4 dumps, got {counts}")
    bare, veil = counts[1] / N, counts[3] / N
    print(f"instructions per request (callgrind; {N} requests each, after {WARMUP} warm-up)")
    for name, value in (("bare", bare), ("veil", veil), ("veil - bare", veil - bare)):
        print(f"{name:<14}{value:>10,.0f}")  # rows bench/against_base.py reads
    print(f"{'veil / bare':<14}{veil / bare:>10.3f}")


if __name__ == "__main__":
    if sys.argv[1:] == ["child"]:
        run_child()
    else:
        main()
