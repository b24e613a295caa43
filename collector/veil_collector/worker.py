"""An HTTP worker of `veil serve`: uvicorn serving the collector app on the listening socket
`veil serve` bound and passed down (file descriptor `--fd`), its Veil drained by a Forwarder
to the writer process (forwarder.py): the worker parses, validates and enqueues, and never
waits on SQLite for an event.

No access log and no proxy-header rewriting: veil reads client addresses itself, from
trusted proxies only, and must not leave them in a log. Exits 3 when its startup fails.

    python -m veil_collector.worker --fd N [--config FILE] [--loop ...] [--http ...]
"""

import argparse
import signal
import socket
import sys

import uvicorn

from veil import config as config_mod

from .app import create_app
from .intake import socket_path
from .writer_process import STARTUP_FAILURE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="veil-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument("--loop", default="uvloop")
    parser.add_argument("--http", default="httptools")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until uvicorn's own handlers: veil serve
    config = config_mod.load(args.config)  # orders the shutdown, with SIGTERM
    app = create_app(config, writer_socket=socket_path(config))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            loop=args.loop,
            http=args.http,
            lifespan="on",
            access_log=False,
            proxy_headers=False,
            log_level="info",
        )
    )
    server.run(sockets=[socket.socket(fileno=args.fd)])
    return 0 if server.started else STARTUP_FAILURE


if __name__ == "__main__":
    sys.exit(main())
