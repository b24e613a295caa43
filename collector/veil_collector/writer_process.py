"""The writer process of `veil serve`: one Veil with its BatchWriter (the pipeline, the
store's event writes, the day's retention and key rotation), fed by every HTTP worker over
veil's Unix socket (intake.py).

Started by `veil serve` (serve.py) before any worker; it is ready once the socket accepts
connections. It exits 3 with one line naming the problem when the store cannot open for good
(a wrong master key, a policy changed without a new version), and on SIGTERM, sent once the
workers have handed over what they held, it flushes its queue (within
`remote.shutdown_grace`) and exits 0. SIGINT is left to `veil serve`, which orders the
shutdown.

    python -m veil_collector.writer_process [--config FILE] [--loop uvloop|asyncio]
"""

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from veil import Veil, VeilError
from veil import config as config_mod
from veil.store.sqlite import SQLiteStore

from .intake import Intake, socket_path

log = logging.getLogger("veil.writer_process")
# Rows per store transaction here: the loop serves no HTTP, so a longer hold costs nothing
WRITER_CHUNK = 2000
STARTUP_FAILURE = 3  # as uvicorn's: the parent gives up instead of restarting it


async def serve(config: config_mod.Config) -> int:
    veil = Veil(config, enabled=True)
    try:
        await veil.start(required=True)
    except VeilError as exc:
        log.error("veil cannot start: %s", exc)
        return STARTUP_FAILURE
    if isinstance(veil.store, SQLiteStore):
        veil.store.chunk = WRITER_CHUNK  # this loop serves no requests: fewer commits
    path = socket_path(config)
    intake = Intake(veil)
    try:
        server = await intake.listen(path)
    except OSError as exc:
        log.error("veil cannot start: the writer cannot listen on %s: %s", path, exc)
        await veil.stop()
        return STARTUP_FAILURE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    await veil.stop()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="veil: %(levelname)s: %(message)s")
    parser = argparse.ArgumentParser(prog="veil-writer")
    parser.add_argument("--config", default=None)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: veil serve orders it
    try:
        config = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return STARTUP_FAILURE
    if args.loop == "uvloop":
        import uvloop

        return uvloop.run(serve(config))
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
