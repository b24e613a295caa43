"""`Veil`: one configured instance, wiring config → keystore, pipeline, store and writer.

Construction validates the config (a broken config never starts) and builds the user-agent
parser. Opening the keystore and the store happens in `start()`, inside the app's lifespan (or
on the first request of an app without lifespan events). veil never acknowledges what it cannot
store; when the open fails, the app keeps serving and:

- a transient failure (an I/O or lock error: a volume not mounted yet, a database locked by a
  migration) is logged and retried every few seconds; requests are still captured into the
  bounded buffer (overflow counted) and written once the store opens, while veil's endpoints
  answer 503 with Retry-After;
- a permanent failure (a master key that does not match the keystore, a policy changed without
  a new version, a store written by a newer veil) is logged once and not retried: veil stops
  capturing (each request not captured is counted as `not_open`) and its endpoints answer 503
  until the app restarts with the problem fixed. `start(required=True)` raises it instead
  (`veil serve` refuses to start).

Lifecycle across event loops: the writer belongs to the event loop it was started on. A loop
that ends (a test client's) cancels it, which flushes and closes; the next start, or the next
request on another loop, opens afresh there. One Veil serves one running loop at a time.
`start()`/`stop()` are counted: several apps sharing one Veil share one writer, which the last
`stop()` flushes and closes.
"""

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeGuard

from starlette.types import Scope

from . import agents
from . import config as config_mod
from .capture import Beacon, CaptureBuffer
from .config import Config
from .consent import Action, ConsentRecord, Ledger, Method
from .drain import Drain, DrainFactory
from .errors import Drop, KeyStoreError, VeilError
from .geo import GeoLookup, open_geoip
from .guards import Guards
from .pipeline import Pipeline
from .proxy import ClientResolver
from .pseudonymise import Pseudonymiser
from .rights import erase as erasure
from .rights import limits
from .rights import requests as rights_requests
from .rights.correct import correct as correct_record
from .rights.export import export as export_subject
from .rights.identity import Requester, sign_token
from .store import EventStore, LocalStore, SQLiteStore, open_store
from .store.keys import KeyStore
from .subjects import Subjects
from .writer import BatchWriter

log = logging.getLogger("veil")
RETRY_OPEN_SECONDS = 5.0
NOT_OPEN = Drop.NOT_OPEN  # a request not captured: veil stopped or cannot store
_SHARED: dict[tuple[str, Path], "Veil"] = {}
_SHARED_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Stats:
    queued: int
    stored: int
    dropped: dict[str, int]
    running: bool


@dataclass(frozen=True, slots=True)
class Running:
    """What opening the keystore and the store gives, set all at once: veil has it from the
    first successful open on (it stays after a stop, for the writer's counters)."""

    writer: Drain  # a BatchWriter, or the drain given to Veil (`veil serve`'s forwarder)
    store: EventStore
    keystore: KeyStore
    ledger: Ledger | None  # in a local store; an app forwarding to a collector has none
    guards: Guards | None  # alike
    geo: GeoLookup | None  # None without a GeoIP database, and once closed


def disabled_by_env() -> bool:
    """`VEIL_DISABLED=1` (or true/yes/on): a host app's tests run without veil."""
    return os.environ.get("VEIL_DISABLED", "").strip().lower() in ("1", "true", "yes", "on")


def is_permanent(exc: BaseException) -> TypeGuard[VeilError]:
    """An open failure that retrying cannot fix: the operator must change the master key (or
    its file), the policy (or its version) or veil itself. A keystore or store error raised
    over a SQLite I/O or lock error (a directory not mounted or not writable yet, a database
    locked by another process's migration), a store error over any OS error, and anything
    unexpected are transient: those are retried."""
    if not isinstance(exc, VeilError):
        return False
    cause = exc.__cause__ or exc.__context__  # kept even when raised `from None`
    transient = (
        sqlite3.OperationalError
        if isinstance(exc, KeyStoreError)
        else (OSError | sqlite3.OperationalError)
    )
    return not isinstance(cause, transient)


class Veil:
    def __init__(
        self,
        config: Config,
        purpose: str = "connection",
        *,
        enabled: bool | None = None,
        drain: DrainFactory | None = None,
    ) -> None:
        """`enabled=False`, or `VEIL_DISABLED=1` when `enabled` is None, switches veil off
        (for a host app's tests): the middleware passes everything through, nothing is
        captured, no file is created, and the Python API raises VeilError. `drain`: what
        empties the capture buffer in place of the in-process BatchWriter (drain.py)."""
        self.config = config
        self._drain = drain
        self.purpose = config.policy.purpose(purpose)  # raises FieldError if undeclared
        # One resolver of the client behind trusted proxies: the pipeline's and the HTTP
        # endpoints' (rate limits, consent jurisdiction) agree on who the client is.
        self.resolver = ClientResolver(config.trusted_proxies)
        self.enabled = not disabled_by_env() if enabled is None else enabled
        if self.enabled:
            for warning in config.warnings:
                log.warning("%s", warning)
        self.buffer = CaptureBuffer(
            config.capture.queue_size, config.capture.batch_size, config.consent.secure_cookie
        )
        self.running: Running | None = None  # set by each successful open
        self.failure: VeilError | None = None  # the permanent open failure, while it holds
        self.not_captured = 0  # requests refused at capture: stopped, or the store cannot open
        self._task: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()
        # The loop on which veil stays closed (stopped, or a permanent failure): no lazy
        # restart there by a late request; another loop (the next test client's) may start.
        self._closed_on: asyncio.AbstractEventLoop | None = None
        self._holders = 0  # start() calls not yet matched by a stop(), on the writer's loop
        self._required = False
        if self.enabled:
            agents.warm_up()

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str] | None = None, *, enabled: bool | None = None
    ) -> "Veil":
        return cls(config_mod.load(path), enabled=enabled)

    @classmethod
    def shared(cls, path: str | os.PathLike[str] | None = None) -> "Veil":
        """The process's one Veil for a config file (located as `config.load` does), made on
        first use. `VeilMiddleware` without a `veil` uses it, so a framework that builds one
        middleware per route (Litestar) or per app still gets one writer per store."""
        located = config_mod.locate(path)
        key = ("file", located.resolve()) if located else ("defaults", Path.cwd().resolve())
        with _SHARED_LOCK:
            veil = _SHARED.get(key)
            if veil is None:
                veil = _SHARED[key] = cls(config_mod.load(located))
            return veil

    # -- hot path ----------------------------------------------------------------------------

    def capture_request(self, scope: Scope) -> None:
        if self._task is None and not self._start_soon():
            self.not_captured += 1  # it could never be stored: counted, not queued
            return
        self.buffer.capture(scope, self.purpose.key)

    def capture_beacon(
        self, scope: Scope, beacon: Beacon, headers: dict[bytes, bytes] | None = None
    ) -> bool:
        """Queue a validated beacon under the connection purpose; False when the queue is full
        or veil cannot store it (the endpoint then answers 503, never 202).

        A path in the beacon is kept only under a consent-based purpose the subject agreed to.
        """
        if self._task is None and not self._start_soon():
            return False
        return self.buffer.capture(scope, self.purpose.key, beacon, headers)

    # -- what the open gave (None before the first successful open) ---------------------------

    @property
    def writer(self) -> Drain | None:
        return None if self.running is None else self.running.writer

    @property
    def store(self) -> EventStore | None:
        return None if self.running is None else self.running.store

    @property
    def keystore(self) -> KeyStore | None:
        return None if self.running is None else self.running.keystore

    @property
    def ledger(self) -> Ledger | None:
        return None if self.running is None else self.running.ledger

    @property
    def guards(self) -> Guards | None:
        return None if self.running is None else self.running.guards

    @property
    def geo(self) -> GeoLookup | None:
        return None if self.running is None else self.running.geo

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """The store is open and the writer runs: what is queued now will be written."""
        return self.writer is not None and self._task is not None

    async def ready(self) -> bool:
        """`is_open`, after starting a veil that was never started (an app without lifespan
        events) and waiting for its first open attempt (milliseconds), so that the first
        beacon of such an app is not refused. veil's endpoints answer 503 when False."""
        if self._task is None and not self._start_soon():
            return False
        if not self._first_attempt.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RETRY_OPEN_SECONDS):
                    await self._first_attempt.wait()
        return self.is_open

    def _start_soon(self) -> bool:
        """Start the writer from a request, for an app without lifespan events (or a test
        client used without `with`). False when veil stays closed on this loop (stopped, a
        permanent open failure, or disabled). Called only while there is no writer task."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the event waits for start()
            return True
        if loop is self._closed_on or not self.enabled:
            return False
        self._launch(loop)
        return True

    def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._closed_on = self.failure = None
        self._holders = 0
        self._first_attempt = asyncio.Event()  # bound to this loop, not an earlier one
        self._task = loop.create_task(self._run(), name="veil-writer")

    async def start(self, *, required: bool = False) -> None:
        """Open the keystore and store and start the writer; idempotent (counted: each start
        needs its stop). A transient failure is logged and retried; a permanent one is logged
        and leaves veil closed, or with `required` is raised (the caller refuses to start)."""
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        if self._task is not None and self._task.get_loop() is not loop:
            await self._forget(self._task)
        if self._task is None:
            self._required = required
            self._launch(loop)
        self._holders += 1
        await self._first_attempt.wait()
        if required and self.failure is not None:
            raise self.failure

    async def _forget(self, task: asyncio.Task[None]) -> None:
        """The writer of an earlier event loop that ended without stop(). Its loop cancelled
        it, which flushed and closed (see _run); a loop stopped without cancelling its tasks
        left the store open: close it here. Either way the next writer starts afresh."""
        if not task.done() and task.get_loop().is_running():
            raise VeilError(
                "this Veil's writer runs on another event loop, still running: "
                "use one Veil per event loop (per server process)"
            )
        self._task = None
        if not task.done() and self.running is not None:
            log.warning(
                "veil's writer was left on an event loop that stopped without "
                "cancelling it: %d queued event(s) are written by the new one",
                len(self.buffer),
            )
            with contextlib.suppress(Exception):
                await self._close()

    async def _open(self) -> Running:
        cfg = self.config
        keystore = KeyStore.open(cfg.keys)
        try:
            store = open_store(cfg)
            await store.open(cfg.policy)
        except BaseException:
            keystore.close()
            raise
        pseudonymiser = Pseudonymiser(keystore)
        geo = open_geoip(cfg.geoip_path)
        pipeline = Pipeline(
            cfg.policy, cfg.site, self.resolver, pseudonymiser, geo, cfg.keys.seal_ip
        )
        # The ledger lives in a local store (open_store's unless `remote.url` is set); an app
        # forwarding to a collector has none.
        ledger = guards = None
        if isinstance(store, LocalStore):
            ledger = Ledger(store, cfg.policy, Subjects(keystore))
            if cfg.consent.withdrawal_deletes:  # GDPR Art. 17(1)(b): rights/erase.py
                ledger.on_withdrawn = erasure.withdrawal_hook(store, keystore, cfg.policy)
            guards = Guards(store, keystore, cfg.policy, ledger)
        writer: Drain = (
            BatchWriter(
                self.buffer,
                pipeline,
                store,
                keystore,
                pseudonymiser,
                cfg.capture,
                cfg.remote.shutdown_grace,
                ledger,
            )
            if self._drain is None
            else self._drain(self.buffer)
        )
        return Running(writer, store, keystore, ledger, guards, geo)

    async def _try_open(self) -> Running | None:
        """One attempt to open: what it gave (also in `self.running`), or None."""
        self.running = None
        try:
            self.running = await self._open()
        except Exception as exc:
            if is_permanent(exc):
                self._fail(exc)
            else:
                log.error(
                    "veil cannot open its store yet (retrying every %g s; events wait "
                    "in memory, bounded): %s: %s",
                    RETRY_OPEN_SECONDS,
                    exc.__class__.__name__,
                    exc,
                )
        finally:
            self._first_attempt.set()
        return self.running

    def _fail(self, exc: VeilError) -> None:
        """A permanent open failure: stay closed on this loop, and drop what was queued
        meanwhile (requests only: no beacon is acknowledged before the store opens)."""
        self.failure = exc
        self._closed_on = asyncio.get_running_loop()
        lost = len(self.buffer.take(len(self.buffer)))
        self.not_captured += lost
        if not self._required:  # a required start raises it: the caller says it once
            log.error(
                "veil cannot open its store and will not retry: %s: %s. Until the app "
                "restarts with this fixed, veil records nothing (%d queued request(s) "
                "dropped) and its endpoints answer 503; the app goes on serving.",
                exc.__class__.__name__,
                exc,
                lost,
            )

    async def _run(self) -> None:
        try:
            while (running := await self._try_open()) is None:
                if self.failure is not None:
                    return  # permanent: retrying cannot help
                await asyncio.sleep(RETRY_OPEN_SECONDS)
            await running.writer.run()
        except asyncio.CancelledError:
            # The loop is closing without stop() (an app without lifespan events, a test
            # client used without `with`): write what is queued and close, or the store's
            # thread would keep the process from exiting.
            closing = self._closed_on is asyncio.get_running_loop()  # stop() cancelled us
            last = None if closing else (self.running or await self._try_open())
            if last is not None:
                # A stopped writer's run is one last flush that also ends its own background
                # work (the day's retention), which a loop being torn down would not finish.
                last.writer.stop()
                with contextlib.suppress(Exception):
                    await last.writer.run()
                await self._close()
            raise
        finally:
            if self._task is asyncio.current_task():  # gone with its loop: start afresh
                self._task = None

    async def _close(self) -> None:
        running = self.running
        if running is None:  # never opened: nothing to close
            return
        await running.store.close()
        running.keystore.close()
        if running.geo is not None:  # the .mmdb's file handle (or mapping) goes with the store
            self.running = replace(running, geo=None)
            running.geo.close()

    async def stop(self) -> None:
        """Flush what is queued, then close the store and keystore. The flush has one
        deadline, `remote.shutdown_grace` seconds; what the store has not taken by then is
        dropped, counted. Started several times (apps sharing this Veil), the matching last
        stop does it; the others only hand over to the writer, which goes on."""
        if self._holders > 1:  # another app still runs on this Veil: its writer goes on
            self._holders -= 1  # and writes what is queued (a flush here could wait forever
            return  # on a collector that is away, with no shutdown deadline)
        self._holders = 0
        loop = asyncio.get_running_loop()
        self._closed_on = loop
        task, self._task = self._task, None
        if task is None:
            return
        if task.get_loop() is not loop:  # a writer left by an earlier loop
            self._task = task
            await self._forget(task)
            return
        running = self.running
        if running is None:  # still retrying to open: one last try, to save the queue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            queued = len(self.buffer)
            running = await self._try_open()
            if running is None:
                log.error("veil stopped without a store: %d queued event(s) lost", queued)
                return
            task = asyncio.create_task(running.writer.run())
        running.writer.stop()
        await task
        await self._close()
        # self.writer stays: its counters still answer stats() after the stop

    async def flush(self) -> None:
        """Write everything queued now (tests and shutdown hooks)."""
        if self.writer is not None and self._task is not None:
            await self.writer.flush()

    # -- the Python API of consent and the guards (needs a started veil with a local store) ---

    def _running(self) -> tuple[Ledger, Guards]:
        if not self.enabled:
            raise VeilError(
                "veil is disabled (VEIL_DISABLED or Veil(..., enabled=False)): "
                "nothing can be recorded"
            )
        running = self.running
        if (
            running is None
            or running.ledger is None
            or running.guards is None
            or (self._task is None)
        ):
            raise VeilError(
                "veil is not running with a local store: call `await veil.start()` "
                "(or use the app's lifespan) first"
            )
        return running.ledger, running.guards

    # Each of these speaks for an app user: `subject_id` is the app's own id for the person
    # (never stored; its pseudonym lives in the app namespace, apart from browser subjects).

    async def _consent(
        self,
        subject_id: str | None,
        scopes: Sequence[str],
        action: Action,
        method: Method,
        signal: bool,
        explicit: bool,
        jurisdiction: str,
    ) -> list[ConsentRecord]:
        ledger, _ = self._running()
        # only a refusal may come from nobody in particular; a grant is always someone's
        # (a missing id gets the FieldError of an empty one, naming subject_id)
        subject = (
            None
            if subject_id is None and action is Action.REFUSE
            else ledger.subjects.app(subject_id or "")
        )
        return await ledger.append(
            subject,
            scopes,
            action,
            method,
            explicit=explicit,
            signal=signal,
            jurisdiction=jurisdiction,
        )

    async def grant(
        self,
        subject_id: str,
        scopes: Sequence[str],
        *,
        signal: bool = False,
        explicit: bool = True,
        jurisdiction: str = "strictest",
    ) -> list[ConsentRecord]:
        """Record the subject's consent to `scopes` (purposes, `special:…`, `decision:…`,
        `provision:…`). Returns the records written (a scope already granted adds none)."""
        return await self._consent(
            subject_id, scopes, Action.GRANT, Method.API, signal, explicit, jurisdiction
        )

    async def refuse(
        self, subject_id: str | None, scopes: Sequence[str], *, jurisdiction: str = "strictest"
    ) -> list[ConsentRecord]:
        return await self._consent(
            subject_id, scopes, Action.REFUSE, Method.API, False, True, jurisdiction
        )

    async def withdraw(
        self, subject_id: str, scopes: Sequence[str], *, jurisdiction: str = "strictest"
    ) -> list[ConsentRecord]:
        return await self._consent(
            subject_id, scopes, Action.WITHDRAW, Method.API, False, True, jurisdiction
        )

    async def consents(self, subject_id: str) -> list[ConsentRecord]:
        ledger, _ = self._running()
        return await ledger.history(ledger.subjects.app(subject_id))

    async def record(
        self, subject_id: str, purpose: str, /, *, gpc: bool = False, **fields: object
    ) -> None:
        """Record app-declared fields about a subject (special categories need explicit
        prior consent on the ledger). `gpc`: the request this comes from carried Global
        Privacy Control (or DNT); a consent given before the signal then no longer holds.
        Positional-only ids, so any declared field name (even `purpose`) is a keyword."""
        ledger, guards = self._running()
        await guards.record(ledger.subjects.app(subject_id), purpose, fields, signal=gpc)

    async def decide(
        self,
        subject_id: str,
        decision: str,
        outcome: object,
        *,
        inputs: Mapping[str, object] | None = None,
        model: str | None = None,
        contract: str | None = None,
        law: str | None = None,
    ) -> str:
        """Log an automated decision and return its id; refused when it has legal effect and
        no basis holds. `contract`/`law`: the name of a contract or law the policy declares
        for this decision type (GDPR Art. 22(2)(a), (b)); any other value is refused."""
        return await self._running()[1].decide(
            subject_id, decision, outcome, inputs=inputs, model=model, contract=contract, law=law
        )

    def subject_token(self, user_id: str, ttl: int = 600) -> str:
        """A token proving, for `ttl` seconds (at most an hour), that its bearer is the app's
        logged-in user `user_id`: the app's page sends it to `/veil/rights/*` as
        `Authorization: Bearer <token>`. It carries the user's pseudonym and an expiry under
        an HMAC (rights/identity.py), never the id itself."""
        ledger, _ = self._running()
        keystore = self.keystore
        assert keystore is not None  # running: the open gave one
        return sign_token(keystore, ledger.subjects, user_id, ttl)

    async def contest(self, decision_id: str, reason: str) -> int:
        return await self._running()[1].contest(decision_id, reason)

    async def provide(
        self,
        recipient: str,
        purpose: str,
        records: Sequence[Mapping[str, object]],
        *,
        exception: str | None = None,
        consent_obtainable: bool = True,
    ) -> int:
        """Check and register a provision to a third party; raise ProvisionRefused if the
        policy does not allow it. `exception`: one of the policy's exceptions to consent
        (law, vital_interests, public_health), invoked explicitly; the latter two only with
        `consent_obtainable=False`."""
        return await self._running()[1].provide(
            recipient, purpose, records, exception=exception, consent_obtainable=consent_obtainable
        )

    async def export(self, subject_id: str) -> dict[str, Any]:
        """Everything veil holds of the app user `subject_id`, every table, unsealed: the
        document docs/export.schema.json describes (`veil.rights.export.to_csv` makes it CSV)."""
        ledger, guards = self._running()
        return await export_subject(
            self._local_store(), guards.keystore, guards.policy, ledger.subjects.app(subject_id)
        )

    async def correct(
        self, subject_id: str, record_id: int, field: str, value: Any
    ) -> dict[str, Any]:
        """Correct `field` of the app user's record `record_id` (an id their export lists);
        the old value is kept only in the audit log, sealed under the subject's key."""
        ledger, guards = self._running()
        return await correct_record(
            self._local_store(),
            guards.keystore,
            ledger,
            ledger.subjects.app(subject_id),
            record_id,
            field,
            value,
        )

    async def complaint(self, subject_id: str, jurisdiction: str = "gdpr") -> dict[str, Any]:
        """Record a complaint from the app user `subject_id` (the app vouches for them, as a
        subject token does), left open for the DPO (`veil rights list`): its reference and due
        date, and the supervisory authority the policy lists, which the person may also turn
        to. `jurisdiction`: the person's (a jurisdiction.Regime key; "ccpa" gives 45 days)."""
        ledger, guards = self._running()
        requester = Requester(ledger.subjects.app(subject_id), "token")
        row = await rights_requests.receive(
            self._local_store(), guards.keystore, requester, "complaint", jurisdiction
        )
        authority = guards.policy.complaints
        return {
            "request": row.id,
            "due": row.due,
            "authority": None
            if authority is None
            else {"name": authority.authority, "url": authority.url},
        }

    def _local_store(self) -> SQLiteStore:
        """The running SQLite store: the rights read and write its tables directly."""
        store = self.store
        if not isinstance(store, SQLiteStore):
            raise VeilError("the rights need veil's own SQLite store (not a collector)")
        return store

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count something refused outside the pipeline (stored with the next batch)."""
        if self.writer is not None:
            self.writer.count_drop(reason, n)

    def stats(self) -> Stats:
        w = self.writer
        dropped = dict(w.drops) if w else {}
        for reason, n in (
            (Drop.QUEUE_FULL, self.buffer.overflow),
            (Drop.CAPTURE_ERROR, self.buffer.errors),
            (NOT_OPEN, self.not_captured),
        ):
            if n:
                dropped[reason] = dropped.get(reason, 0) + n
        return Stats(
            queued=len(self.buffer),
            stored=w.stored if w else 0,
            dropped={str(k): v for k, v in dropped.items()},
            running=w is not None and self._task is not None,
        )

    # -- erasure and limits (rights/erase.py, rights/limits.py), for an app user ------------
    # Last in the class: below `object` (GDPR Art. 21's word), the name means this method.

    def _subject(self, subject_id: str) -> tuple[LocalStore, KeyStore, str]:
        ledger, _ = self._running()
        assert self.keystore is not None  # running: the open gave one
        return ledger.store, self.keystore, ledger.subjects.app(subject_id)

    async def erase(self, subject_id: str, request_id: str = "api") -> dict[str, object]:
        """Erase everything veil holds about the app user (their keys destroyed, their rows
        in every table deleted), but what the policy's legal holds keep, and return the proof
        written to the audit log. They may consent again afterwards, under a fresh key."""
        return await erasure.erase(
            *self._subject(subject_id), request_id, policy=self.config.policy
        )

    async def restrict(self, subject_id: str) -> bool:
        """Keep the user's data but use it for nothing (queries, provision, decisions) until
        `lift_restriction`; False when already restricted."""
        return await limits.impose(*self._subject(subject_id), limits.RESTRICTION)

    async def lift_restriction(self, subject_id: str) -> bool:
        return await limits.lift(*self._subject(subject_id), limits.RESTRICTION)

    async def suspend(self, subject_id: str) -> bool:
        """Restriction, and nothing more collected or recorded about the user until `resume`."""
        return await limits.impose(*self._subject(subject_id), limits.SUSPENSION)

    async def resume(self, subject_id: str) -> bool:
        return await limits.lift(*self._subject(subject_id), limits.SUSPENSION)

    async def object(self, subject_id: str, purpose: str = "connection") -> bool:
        """The user objects to a legitimate-interests purpose (GDPR Art. 21): recorded and
        audited; veil cannot tell an app user's requests apart, so the app enforces it for
        them (rights/limits.py)."""
        limits.check_objection(self.config.policy, purpose)
        return await limits.impose(*self._subject(subject_id), limits.OBJECTION, purpose)

    async def lift_objection(self, subject_id: str, purpose: str = "connection") -> bool:
        limits.check_objection(self.config.policy, purpose)
        return await limits.lift(*self._subject(subject_id), limits.OBJECTION, purpose)
