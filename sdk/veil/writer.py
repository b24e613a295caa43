"""The background writer: drains the capture buffer in batches through the pipeline into the
store, off the request path.

A batch is written when `capture.batch_size` events are waiting or every
`capture.flush_interval` seconds. A failed write is retried with backoff; after
`capture.max_retries` the batch is dropped and counted as `store_error`, and drop counts that
could not be written ride along with the next batch. Stopping flushes everything queued.
"""

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter

from .capture import CaptureBuffer
from .config import CaptureConfig
from .keys import KeyStore
from .pipeline import Drop, Pipeline
from .pseudonymise import Pseudonymiser
from .store import EventStore

log = logging.getLogger("veil.writer")


class BatchWriter:
    def __init__(self, buffer: CaptureBuffer, pipeline: Pipeline, store: EventStore,
                 keystore: KeyStore, pseudonymiser: Pseudonymiser, cfg: CaptureConfig) -> None:
        self.buffer = buffer
        self.pipeline = pipeline
        self.store = store
        self.keystore = keystore
        self.pseudonymiser = pseudonymiser
        self.cfg = cfg
        self.stored = 0
        self.drops: Counter = Counter()     # every drop since start, by reason
        self._unwritten: Counter = Counter()  # drops not yet persisted in the store
        self._rotated_on: dt.date | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        buffer.wake = self._wake

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg.flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # never let the writer die: log without event data, go on
                log.exception("veil writer: unexpected error while flushing")
            if self._stopping:
                return

    def _rotate_keys(self) -> None:
        today = dt.datetime.now(dt.UTC).date()
        if self._rotated_on != today:
            destroyed = self.keystore.rotate()
            self.pseudonymiser.forget_before(today - dt.timedelta(days=1))
            self._rotated_on = today
            if destroyed:
                log.info("destroyed %d expired key(s)", len(destroyed))

    async def flush(self) -> None:
        """Write everything queued now, batch by batch."""
        self._rotate_keys()
        while True:
            batch = self.buffer.take(self.cfg.batch_size)
            rows, drops = self.pipeline.process(batch)
            overflow, errors = self.buffer.take_refused()
            if overflow:
                drops[Drop.QUEUE_FULL] += overflow
            if errors:
                drops[Drop.CAPTURE_ERROR] += errors
            if not rows and not drops and not self._unwritten:
                return
            self.drops.update(drops)
            await self._write(rows, drops)
            if not self.buffer:
                return
            await asyncio.sleep(0)  # let the app's requests run between batches

    async def _write(self, rows: list[tuple], drops: Counter) -> None:
        self._unwritten.update(drops)
        day = dt.datetime.now(dt.UTC).date().isoformat()
        for attempt in range(self.cfg.max_retries + 1):
            try:
                await self.store.write(rows, self._unwritten, day)
            except Exception as exc:
                log.warning("store write failed (attempt %d of %d): %s: %s", attempt + 1,
                            self.cfg.max_retries + 1, exc.__class__.__name__, exc)
                if attempt < self.cfg.max_retries:
                    await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
                continue
            self.stored += len(rows)
            self._unwritten.clear()
            return
        log.error("dropped a batch of %d event(s) after %d failed writes", len(rows),
                  self.cfg.max_retries + 1)
        self.drops[Drop.STORE_ERROR] += len(rows)
        self._unwritten[Drop.STORE_ERROR] += len(rows)
