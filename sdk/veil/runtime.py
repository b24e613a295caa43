"""`Veil`: one configured instance, wiring config → keystore, pipeline, store and writer.

Construction validates the config (a broken config never starts) and builds the user-agent
parser. Opening the keystore and the store happens in `start()`, inside the app's lifespan; if
that fails, the failure is logged with a message naming the problem, the app keeps serving, and
the writer tries again while events wait in the bounded buffer (overflow counted).
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from . import agents
from . import config as config_mod
from .capture import CaptureBuffer
from .config import Config
from .consent import Action, ConsentRecord, Ledger, Method
from .errors import VeilError
from .geo import GeoLookup, open_geoip
from .guards import Guards
from .keys import KeyStore
from .pipeline import Pipeline
from .proxy import ClientResolver
from .pseudonymise import Pseudonymiser
from .store import EventStore, open_store
from .subjects import Subjects
from .writer import BatchWriter

log = logging.getLogger("veil")
RETRY_OPEN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Stats:
    queued: int
    stored: int
    dropped: dict[str, int]
    running: bool


class Veil:
    def __init__(self, config: Config, purpose: str = "connection") -> None:
        self.config = config
        self.purpose = config.policy.purpose(purpose)  # raises FieldError if undeclared
        for warning in config.warnings:
            log.warning("%s", warning)
        self.buffer = CaptureBuffer(config.capture.queue_size, config.capture.batch_size,
                                    config.consent.secure_cookie)
        self.writer: BatchWriter | None = None
        self.store: EventStore | None = None
        self.keystore: KeyStore | None = None
        self.ledger: Ledger | None = None
        self.guards: Guards | None = None
        self.geo: GeoLookup | None = None
        self._task: asyncio.Task | None = None
        self._first_attempt = asyncio.Event()
        self._stopped = False  # after stop(), no lazy restart by a late request
        agents.warm_up()

    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None) -> "Veil":
        return cls(config_mod.load(path))

    # -- hot path ----------------------------------------------------------------------------

    def capture_request(self, scope: dict) -> None:
        if self._task is None:
            self._start_soon()
        self.buffer.capture(scope, self.purpose.key)

    def capture_beacon(self, scope: dict, beacon: dict,
                       headers: dict[bytes, bytes] | None = None) -> bool:
        """Queue a validated beacon under the connection purpose; False when the queue is full.

        A path in the beacon is kept only under a consent-based purpose the subject agreed to.
        """
        if self._task is None:
            self._start_soon()
        return self.buffer.capture(scope, self.purpose.key, beacon, headers)

    # -- lifecycle ---------------------------------------------------------------------------

    def _start_soon(self) -> None:
        """An app without lifespan events still gets a writer; a stopped veil stays stopped."""
        if self._stopped:
            return
        with contextlib.suppress(RuntimeError):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="veil-writer")

    async def start(self) -> None:
        """Open the keystore and store and start the writer; on failure, log and retry."""
        if self._task is None:
            self._stopped = False
            self._first_attempt = asyncio.Event()  # bound to this loop, not an earlier one
            self._task = asyncio.create_task(self._run(), name="veil-writer")
            await self._first_attempt.wait()

    async def _open(self) -> BatchWriter:
        cfg = self.config
        keystore = KeyStore.open(cfg.keys)
        try:
            store = open_store(cfg)
            await store.open(cfg.policy)
        except BaseException:
            keystore.close()
            raise
        pseudonymiser = Pseudonymiser(keystore)
        self.geo = open_geoip(cfg.geoip_path)
        pipeline = Pipeline(cfg.policy, cfg.site, ClientResolver(cfg.trusted_proxies),
                            pseudonymiser, self.geo, cfg.keys.seal_ip)
        self.keystore, self.store = keystore, store
        # The ledger lives in a local store; an app forwarding to a collector has none.
        self.ledger = None if cfg.remote.url else Ledger(store, cfg.policy, Subjects(keystore))
        self.guards = self.ledger and Guards(store, keystore, cfg.policy, self.ledger)
        return BatchWriter(self.buffer, pipeline, store, keystore, pseudonymiser, cfg.capture,
                           cfg.remote.shutdown_grace, self.ledger)

    async def _try_open(self) -> bool:
        self.writer = None
        try:
            self.writer = await self._open()
        except Exception as exc:
            log.error("veil cannot start, events wait in memory (bounded): %s: %s",
                      exc.__class__.__name__, exc)
        finally:
            self._first_attempt.set()
        return self.writer is not None

    async def _run(self) -> None:
        try:
            while not await self._try_open():
                await asyncio.sleep(RETRY_OPEN_SECONDS)
            await self.writer.run()
        except asyncio.CancelledError:
            # The loop is closing without stop() (an app without lifespan events): write what
            # is queued and close, or the store's thread would keep the process from exiting.
            if not self._stopped and (self.writer is not None or await self._try_open()):
                with contextlib.suppress(Exception):
                    await self.writer.flush()
                await self._close()
            raise

    async def _close(self) -> None:
        await self.store.close()
        self.keystore.close()

    async def stop(self) -> None:
        """Flush what is queued, then close the store and keystore."""
        task, self._task = self._task, None
        self._stopped = True
        if task is None:
            return
        if self.writer is None:  # still retrying to open: one last try, to save the queue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if not await self._try_open():
                log.error("veil stopped without a store: %d queued event(s) lost",
                          len(self.buffer))
                return
            task = asyncio.create_task(self.writer.run())
        self.writer.stop()
        await task
        await self._close()
        # self.writer stays: its counters still answer stats() after the stop

    async def flush(self) -> None:
        """Write everything queued now (tests and shutdown hooks)."""
        if self.writer is not None and self._task is not None:
            await self.writer.flush()

    # -- the Python API of consent and the guards (needs a started veil with a local store) ---

    def _running(self) -> tuple[Ledger, Guards]:
        if self.ledger is None or self.guards is None or self._task is None:
            raise VeilError("veil is not running with a local store: call `await veil.start()` "
                            "(or use the app's lifespan) first")
        return self.ledger, self.guards

    # Each of these speaks for an app user: `subject_id` is the app's own id for the person
    # (never stored; its pseudonym lives in the app namespace, apart from browser subjects).

    async def _consent(self, subject_id: str | None, scopes: Sequence[str], action: Action,
                       method: Method, signal: bool, explicit: bool,
                       jurisdiction: str) -> list[ConsentRecord]:
        ledger, _ = self._running()
        subject = ledger.subjects.app(subject_id) if subject_id else None
        return await ledger.append(subject, scopes, action, method, explicit=explicit,
                                   signal=signal, jurisdiction=jurisdiction)

    async def grant(self, subject_id: str, scopes: Sequence[str], *, signal: bool = False,
                    explicit: bool = True, jurisdiction: str = "strictest"
                    ) -> list[ConsentRecord]:
        """Record the subject's consent to `scopes` (purposes, `special:…`, `decision:…`,
        `provision:…`). Returns the records written (a scope already granted adds none)."""
        return await self._consent(subject_id, scopes, Action.GRANT, Method.API, signal,
                                   explicit, jurisdiction)

    async def refuse(self, subject_id: str | None, scopes: Sequence[str], *,
                     jurisdiction: str = "strictest") -> list[ConsentRecord]:
        return await self._consent(subject_id, scopes, Action.REFUSE, Method.API, False, True,
                                   jurisdiction)

    async def withdraw(self, subject_id: str, scopes: Sequence[str], *,
                       jurisdiction: str = "strictest") -> list[ConsentRecord]:
        return await self._consent(subject_id, scopes, Action.WITHDRAW, Method.API, False,
                                   True, jurisdiction)

    async def consents(self, subject_id: str) -> list[ConsentRecord]:
        ledger, _ = self._running()
        return await ledger.history(ledger.subjects.app(subject_id))

    async def record(self, subject_id: str, purpose: str, /, *, gpc: bool = False,
                     **fields: object) -> None:
        """Record app-declared fields about a subject (special categories need explicit
        prior consent on the ledger). `gpc`: the request this comes from carried Global
        Privacy Control (or DNT); a consent given before the signal then no longer holds.
        Positional-only ids, so any declared field name (even `purpose`) is a keyword."""
        ledger, guards = self._running()
        await guards.record(ledger.subjects.app(subject_id), purpose, fields, signal=gpc)

    async def decide(self, subject_id: str, decision: str, outcome: object, **kw) -> str:
        """Log an automated decision; refused when it has legal effect and no basis holds."""
        return await self._running()[1].decide(subject_id, decision, outcome, **kw)

    async def contest(self, decision_id: str, reason: str) -> int:
        return await self._running()[1].contest(decision_id, reason)

    async def provide(self, recipient: str, purpose: str, records, **kw) -> int:
        """Check and register a provision to a third party; raise ProvisionRefused if the
        policy does not allow it."""
        return await self._running()[1].provide(recipient, purpose, records, **kw)

    def stats(self) -> Stats:
        w = self.writer
        dropped = dict(w.drops) if w else {}
        for reason, n in (("queue_full", self.buffer.overflow),
                          ("capture_error", self.buffer.errors)):
            if n:
                dropped[reason] = dropped.get(reason, 0) + n
        return Stats(queued=len(self.buffer), stored=w.stored if w else 0,
                     dropped={str(k): v for k, v in dropped.items()},
                     running=w is not None and self._task is not None)
