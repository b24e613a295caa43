"""Real server processes for tests: started on a free loopback port, killed or stopped."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A command serving HTTP on `port`; `start` waits until it accepts connections.
    `config` (its veil.toml) and `data` (its data directory) are there for tests that look
    at what the server stored; `db` is the store in `data`."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log: Path,
        port: int | None = None,
        *,
        config: Path | None = None,
        data: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.env = env
        self.log = log
        self.config = config
        self.data = data
        self.proc: subprocess.Popen | None = None

    @classmethod
    def app(
        cls,
        target: str,
        env: dict[str, str],
        log: Path,
        *,
        app_dir: Path | None = None,
        config: Path | None = None,
        data: Path | None = None,
    ) -> "ServerProcess":
        """An ASGI app (`module:attribute`) under uvicorn, run as the README says apps must
        be: no proxy-header rewriting, no access log."""
        where = ["--app-dir", str(app_dir)] if app_dir else []
        return cls(
            [
                sys.executable,
                "-m",
                "uvicorn",
                target,
                *where,
                "--port",
                "{port}",
                "--no-proxy-headers",
                "--no-access-log",
            ],
            env,
            log,
            config=config,
            data=data,
        )

    @classmethod
    def veil_serve(
        cls, config: Path, env: dict[str, str], log: Path, *, data: Path | None = None
    ) -> "ServerProcess":
        return cls(
            [
                sys.executable,
                "-m",
                "veil_collector.cli",
                "serve",
                "--port",
                "{port}",
                "--config",
                str(config),
            ],
            env,
            log,
            config=config,
            data=data,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        """The SQLite store in the data directory."""
        if self.data is None:
            raise ValueError("this ServerProcess was made without a data directory")
        return self.data / "veil.db"

    def start(self) -> "ServerProcess":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{self.log.read_text()}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        """SIGINT (the lifespan shutdown flushes), then the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=20)
