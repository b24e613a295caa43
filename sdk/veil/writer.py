"""The background writer: drains the capture buffer in batches through the pipeline into the
store, off the request path.

A batch is written when `capture.batch_size` events are waiting or every
`capture.flush_interval` seconds. A failed write keeps its batch and is retried with backoff,
asynchronously: nothing waits in SQLite's busy handler on the loop (the loop's connection has
no busy timeout, store/sqlite.py), so a store locked by another process (`veil retention`
from cron, a backup) fails at once and the writer sleeps while the app serves. Such a busy
store, or a remote collector, is retried until it answers, however long: meanwhile new
events wait in the bounded capture buffer, and once it is full they are refused, counted as
`queue_full` (the beacon endpoint answers 503, never a 202 for what would be lost). Any other
failure of a local store (a row it refuses, a full disk, a broken file) counts against
`capture.max_retries`: after that many retries the batch is dropped, counted as
`store_error`. Drop counts that could not be written ride along with the next batch.

Stopping flushes everything queued, within one deadline: `remote.shutdown_grace` seconds from
`stop()` for the whole shutdown, not per batch (with ten queued batches a per-batch grace made
a stop with the collector away outlast a container's stop timeout). Until the deadline each
batch is written if the store answers; an attempt still in flight at the deadline is cut off;
after it, what is left goes through the pipeline and its rows are counted as `store_error`.
"""

import asyncio
import contextlib
import datetime as dt
import logging
import traceback
from collections import Counter

from . import retention
from .capture import CaptureBuffer, Captured
from .config import CaptureConfig
from .consent import Action, Ledger, Method
from .errors import Drop
from .pipeline import NO_CONSENT, ConsentView, Pipeline, Withdrawal
from .pseudonymise import Pseudonymiser
from .rights import limits
from .store import BatchRejected, EventStore
from .store.keys import KeyStore
from .store.sqlite import is_locked
from .store.wire import new_batch_id

log = logging.getLogger("veil.writer")
PROCESS_SLICE = 200
# Retry pauses for a store locked by another process: a failed attempt costs microseconds, so
# poll often enough that a released lock is used within a flush interval or so.
BUSY_PAUSE, BUSY_PAUSE_MAX = 0.02, 0.25


class BatchWriter:
    def __init__(
        self,
        buffer: CaptureBuffer,
        pipeline: Pipeline,
        store: EventStore,
        keystore: KeyStore,
        pseudonymiser: Pseudonymiser,
        cfg: CaptureConfig,
        shutdown_grace: float = 10.0,
        ledger: Ledger | None = None,
    ) -> None:
        self.buffer = buffer
        self.pipeline = pipeline
        self.store = store
        self.keystore = keystore
        self.pseudonymiser = pseudonymiser
        self.cfg = cfg
        self.shutdown_grace = shutdown_grace
        self.ledger = ledger
        self.stored = 0
        self.drops: Counter[str] = Counter()  # every drop since start, by reason
        self._unwritten: Counter[str] = Counter()  # drops not yet persisted in the store
        self._rotated_on: dt.date | None = None
        self._maintenance: asyncio.Task[None] | None = None  # the day's retention and key rotation
        self._stopping = False
        self._deadline: float | None = None  # the loop's time() when the shutdown grace ends
        self._stop_requested = asyncio.Event()  # cuts short a retry's pause while running
        self._attempts: set[asyncio.Timeout] = set()  # the store writes in flight
        self._wake = asyncio.Event()
        buffer.wake = self._wake

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count something refused outside the pipeline; stored with the next batch."""
        self.drops[reason] += n
        self._unwritten[reason] += n

    def stop(self) -> None:
        """Flush what is queued and end `run`, within `shutdown_grace` seconds from now.
        Called on the writer's event loop."""
        if self._deadline is None:  # a second stop does not extend the grace
            self._deadline = asyncio.get_running_loop().time() + self.shutdown_grace
            for attempt in self._attempts:  # a write begun while running ends by then too
                attempt.reschedule(self._deadline)
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()

    def _spent(self) -> bool:
        """The shutdown grace is over: no more write attempts."""
        return self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline

    async def run(self) -> None:
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.cfg.flush_interval):
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self.flush()
                except Exception as exc:  # never let the writer die; go on
                    # Where it failed, not the message: a message may quote raw event data.
                    where = traceback.extract_tb(exc.__traceback__)[-1]
                    log.error(
                        "veil writer: unexpected %s at %s:%d while flushing",
                        exc.__class__.__name__,
                        where.filename,
                        where.lineno,
                    )
                if self._stopping:
                    return
        finally:
            await self._end_maintenance()

    def _daily(self) -> None:
        """Once a UTC day, start retention (local store) and key rotation beside the writer."""
        today = dt.datetime.now(dt.UTC).date()
        if self._rotated_on == today or (self._maintenance and not self._maintenance.done()):
            return
        self._rotated_on = today
        self._maintenance = asyncio.create_task(self._maintain(today), name="veil-retention")

    async def _maintain(self, today: dt.date) -> None:
        """Retention and key rotation. Off the event loop and in short chunks (store/
        offloop.py), beside the writer, not in its way: batches keep being written while a
        month of rows is deleted, and the capture buffer does not fill up meanwhile."""
        try:
            if self.ledger is not None:  # a local store: dispose of what is past retention
                # the ledger's store is this writer's (runtime builds both on one store)
                local = self.ledger.store
                done = await retention.enforce(local, self.keystore, self.pipeline.policy)
                log.info("retention: %s", done)
            else:
                await self.keystore.rotate_off_loop()
        except Exception as exc:
            log.error("retention failed: %s: %s", exc.__class__.__name__, exc)
        self.pseudonymiser.forget_before(today - dt.timedelta(days=1))

    async def _end_maintenance(self) -> None:
        """At stop: cancel a retention still running. Its statement is interrupted and rolled
        back; what earlier chunks deleted stays deleted, the rest goes at the next start."""
        task, self._maintenance = self._maintenance, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def flush(self) -> None:
        """Write everything queued now, batch by batch."""
        self._daily()
        while True:
            batch = self.buffer.take(self.cfg.batch_size)
            consent = await self._consent_view(batch)
            rows: list[tuple[object, ...]] = []
            drops: Counter[str] = Counter()
            withdrawals: list[Withdrawal] = []
            # In slices, yielding between them: the pipeline runs on the app's event loop and
            # must not hold it for a whole batch (~10 ms per 1,000 events).
            for i in range(0, len(batch), PROCESS_SLICE):
                done = self.pipeline.process(batch[i : i + PROCESS_SLICE], consent)
                rows += done.rows
                drops += done.drops
                withdrawals += done.withdrawals
                await asyncio.sleep(0)
            overflow, errors = self.buffer.take_refused()
            if overflow:
                drops[Drop.QUEUE_FULL] += overflow
            if errors:
                drops[Drop.CAPTURE_ERROR] += errors
            if not rows and not drops and not self._unwritten:
                await self._record_withdrawals(withdrawals)
                return
            self.drops.update(drops)
            await self._write(rows, drops)
            # after the rows: a withdrawal disposes of the purpose's rows (rights/erase.py),
            # those of this batch's earlier requests included
            await self._record_withdrawals(withdrawals)
            if not self.buffer:
                return
            await asyncio.sleep(0)  # let the app's requests run between batches

    async def _consent_view(self, batch: list[Captured]) -> ConsentView:
        """The ledger's records for the subjects whose cookie veil issued, in this batch."""
        if self.ledger is None:
            return NO_CONSENT
        values = {
            item.cookies.subject
            for item in batch
            if item.cookies and item.cookies.subject is not None
        }
        # a cookie veil did not issue verifies to None: that request has no subject
        subjects = {v: s for v in values if (s := self.ledger.subjects.browser(v))}
        if not subjects:
            return NO_CONSENT
        try:
            pseudonyms = set(subjects.values())
            return ConsentView(
                subjects,
                await self.ledger.histories(pseudonyms),
                limits.active(self.ledger.store, pseudonyms),  # suspension, objection
            )
        except Exception as exc:  # no ledger, no consent: consent-based purposes collect nothing
            log.warning(
                "consent ledger unreadable, consent-based purposes skip this batch: %s: %s",
                exc.__class__.__name__,
                exc,
            )
            return NO_CONSENT

    async def _record_withdrawals(self, withdrawals: list[Withdrawal]) -> None:
        ledger = self.ledger
        if ledger is None:  # none arise: without a ledger the pipeline sees NO_CONSENT
            return
        for subject, scope, regime in set(withdrawals):
            try:
                await ledger.append(
                    subject,
                    [scope],
                    Action.WITHDRAW,
                    Method.GPC,
                    explicit=False,
                    signal=True,
                    jurisdiction=regime,
                )
            except Exception as exc:
                log.warning("could not record a GPC opt-out: %s: %s", exc.__class__.__name__, exc)

    async def _write(self, rows: list[tuple[object, ...]], drops: Counter[str]) -> None:
        """Write until it works, the store refuses the batch for good (or fails it
        `max_retries` times other than by a lock), or the shutdown deadline passes."""
        self._unwritten.update(drops)
        day = dt.datetime.now(dt.UTC).date().isoformat()
        batch = new_batch_id()  # the same on every retry: a batch's drops are counted once
        attempt = failures = waits = 0  # attempts; failures not cured by waiting; busy ones
        reason = Drop.STORE_ERROR
        while not self._spent():  # the deadline is one for the whole shutdown
            attempt += 1
            try:
                await self._attempt(rows, day, batch)
            except BatchRejected as exc:
                reason = Drop.REJECTED
                log.error("%s", exc)
                break
            except Exception as exc:  # TimeoutError included: the deadline cut it off
                locked = is_locked(exc)
                if attempt == 1 or attempt % 30 == 0:  # a long outage logs, but not in a flood
                    log.warning(
                        "store write failed (attempt %d)%s: %s: %s",
                        attempt,
                        "; the batch is kept and retried while new events queue" if locked else "",
                        exc.__class__.__name__,
                        exc,
                    )
                if locked:
                    waits += 1
                    await self._pause(min(BUSY_PAUSE * 2 ** min(waits - 1, 4), BUSY_PAUSE_MAX))
                    continue
                failures += 1
                limit = self.cfg.max_retries
                if limit is not None and failures > limit:
                    break
                await self._pause(min(0.05 * 2 ** min(failures - 1, 6), 2.0))
                continue
            self.stored += len(rows)
            self._unwritten.clear()
            if attempt > 1:
                log.info("store write succeeded after %d attempt(s)", attempt)
            return
        log.error(
            "dropped a batch of %d event(s) after %d attempt(s)%s: %s",
            len(rows),
            attempt,
            ", the shutdown grace is over" if self._spent() else "",
            reason,
        )
        self.drops[reason] += len(rows)
        self._unwritten[reason] += len(rows)

    async def _attempt(self, rows: list[tuple[object, ...]], day: str, batch: str) -> None:
        """One store write. At shutdown it ends at the deadline (stop() moves it there if it
        began while running): a collector that accepts the connection but never answers must
        not hold the stop for remote.timeout."""
        async with asyncio.timeout_at(self._deadline) as attempt:
            self._attempts.add(attempt)
            try:
                await self.store.write(rows, self._unwritten, day, batch=batch)
            finally:
                self._attempts.discard(attempt)

    async def _pause(self, delay: float) -> None:
        """`delay` seconds before the next attempt. While running, a stop() ends it (the
        shutdown retries at once); at shutdown, it ends at the deadline."""
        if self._deadline is not None:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(max(0.0, min(delay, self._deadline - loop.time())))
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stop_requested.wait()
