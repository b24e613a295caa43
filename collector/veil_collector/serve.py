"""`veil serve --workers N`: one writer process and N HTTP workers, supervised.

1. The writer process (writer_process.py) opens the keystore and the store, runs the
   pipeline, the store's event writes, retention and key rotation, and listens on veil's
   Unix socket. A store that cannot open for good ends it at once: `veil serve` exits 1, its
   one line naming the problem, before listening on any port.
2. The listening TCP socket is bound here and passed down; N uvicorn workers (worker.py)
   accept on it, capture, and forward what they capture to the writer.
3. A child that ends while serving is started again (a writer killed by the OOM killer
   loses only what it had taken: what the workers hold they send to the new one). One
   that cannot start for good (exit 3) stops the whole server, exit 1.
4. SIGTERM or SIGINT: the workers stop first (each hands what it holds to the writer, within
   `remote.shutdown_grace`), then the writer flushes and exits; then `veil serve` exits 0.

The children run in their own session (a terminal's Ctrl-C reaches `veil serve` alone, which
orders the shutdown) and die with it if it is killed (Linux: PR_SET_PDEATHSIG).
"""

import ctypes
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from veil.config import Config

from .intake import socket_path
from .writer_process import STARTUP_FAILURE

POLL = 0.05  # s between looks at the children
READY_TIMEOUT = 60.0  # s for the writer to open its store and listen
RESTART_PAUSE = 0.5  # s before starting again a child that ended


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str
    port: int
    workers: int
    loop: str
    http: str
    config: str | None


def _die_with_parent() -> None:  # pragma: no cover (runs in the child, before exec)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Supervisor:
    options: ServeOptions
    writer_socket: Path
    listener: socket.socket | None = None
    writer: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stopping: bool = False

    def _spawn(self, module: str, *extra: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", module, *extra]
        if self.options.config is not None:
            cmd += ["--config", self.options.config]
        pass_fds = (self.listener.fileno(),) if self.listener is not None else ()
        return subprocess.Popen(
            cmd, pass_fds=pass_fds, start_new_session=True, preexec_fn=_die_with_parent
        )

    def start_writer(self) -> bool:
        """Start the writer and wait until its socket answers; False if it cannot start."""
        loop = "uvloop" if self.options.loop in ("uvloop", "auto") else "asyncio"
        self.writer = self._spawn("veil_collector.writer_process", "--loop", loop)
        deadline = time.monotonic() + READY_TIMEOUT
        while self.writer.poll() is None and time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(self.writer_socket))
                return True
            except OSError:
                time.sleep(POLL)
        return False

    def start_worker(self) -> subprocess.Popen[bytes]:
        assert self.listener is not None
        o = self.options
        fd = str(self.listener.fileno())
        return self._spawn("veil_collector.worker", "--fd", fd, "--loop", o.loop, "--http", o.http)

    def request_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        o = self.options
        self.writer_socket.unlink(missing_ok=True)  # left by a killed writer: not ready yet
        if not self.start_writer():
            self._end(self.writer)
            return 1
        if self.stopping:  # stopped while the writer opened the store
            self._end(self.writer)
            return 0
        try:
            self.listener = socket.create_server((o.host, o.port), backlog=2048)
        except OSError as exc:
            print(f"veil: cannot listen on {o.host}:{o.port}: {exc.strerror}", file=sys.stderr)
            self._end(self.writer)
            return 1
        self.workers = [self.start_worker() for _ in range(o.workers)]
        print(
            f"veil collector starting on http://{o.host}:{o.port}/ (demo page there): "
            f"{o.workers} HTTP worker(s), one writer process",
            flush=True,
        )
        code = self._supervise()
        self._end(*self.workers)  # each hands over what it holds, then ends
        self._end(self.writer)
        return code

    def _supervise(self) -> int:
        while not self.stopping:
            time.sleep(POLL)
            assert self.writer is not None
            if self.writer.poll() is not None and not self.stopping:
                if self.writer.returncode == STARTUP_FAILURE:
                    return 1
                print(
                    f"veil: the writer process ended ({self.writer.returncode}); starting it "
                    "again (the workers keep what they hold meanwhile)",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(RESTART_PAUSE)
                if not self.start_writer():
                    return 1
            for i, worker in enumerate(self.workers):
                if worker.poll() is not None and not self.stopping:
                    if worker.returncode == STARTUP_FAILURE:
                        return 1
                    print(
                        f"veil: an HTTP worker ended ({worker.returncode}); starting it again",
                        file=sys.stderr,
                        flush=True,
                    )
                    time.sleep(RESTART_PAUSE)  # a worker that keeps dying must not spin
                    self.workers[i] = self.start_worker()
        return 0

    @staticmethod
    def _end(*procs: subprocess.Popen[bytes] | None) -> None:
        """SIGTERM to all, then wait for each: a child flushes within the shutdown grace."""
        running = [p for p in procs if p is not None and p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def serve(config: Config, options: ServeOptions) -> int:
    supervisor = Supervisor(options, socket_path(config))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, supervisor.request_stop)
    return supervisor.run()
