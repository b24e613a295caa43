"""An HTTP worker's drain (veil.drain.Drain): what the worker captures goes, in frames, to
the writer process over veil's Unix socket (frames.py); the worker never waits on SQLite.

One frame at a time, each answered by the writer once its items are in the writer's capture
buffer: an unanswered frame is sent again after a reconnect, so a writer that dies or
restarts loses only what it had already taken (as a single process's kill -9 does: at most
about one flush interval), never what the worker still holds. While the writer is away or
slow, items wait in the worker's bounded buffer (its overflow counted as `queue_full`, and the
beacon endpoint answers 503) and the worker reconnects with backoff. Drops counted in the
worker (queue_full, capture_error, rate limits via Veil.count_drop) ride along with the next
frame and are counted by the writer.

Stopping sends what is held within `remote.shutdown_grace` seconds; what the writer has not
taken by then is lost, and logged.
"""

import asyncio
import contextlib
import logging
from collections import Counter
from pathlib import Path

from veil.capture import CaptureBuffer
from veil.config import CaptureConfig
from veil.errors import Drop, FrameError

from .frames import (
    BATCH,
    ITEMS,
    MAX_COUNT,
    RESULT,
    STATS,
    frame,
    read_frame,
    read_result,
    read_stats,
    wire_item,
)

log = logging.getLogger("veil.forwarder")
BATCH_TIMEOUT = 30.0  # s a remote batch may take to be stored by the writer
MAX_BACKOFF = 2.0
EMPTY = frame(ITEMS, ((), {}))  # nothing to send: asks the writer for its counters


class Forwarder:
    def __init__(
        self, buffer: CaptureBuffer, path: Path, cfg: CaptureConfig, shutdown_grace: float
    ) -> None:
        self.buffer = buffer
        self.path = path
        self.batch_size = cfg.batch_size
        self.interval = cfg.flush_interval
        self.grace = shutdown_grace
        # The writer's counters, as its last answer gave them (what /healthz shows)
        self.stored = 0
        self.drops: Counter[str] = Counter()
        self.writer_queued = 0
        self._counted: Counter[str] = Counter()  # drops counted here, not yet sent
        self._unsent: tuple[bytes, int] | None = None  # a frame and its items, not answered
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._failures = 0  # connection attempts failed in a row
        self._retry_at = 0.0  # the loop's time() before which no reconnect is tried
        self._stopping = False
        self._deadline: float | None = None
        self._attempt: asyncio.Timeout | None = None  # the exchange in flight
        self._wake = asyncio.Event()
        buffer.wake = self._wake

    @property
    def held(self) -> int:
        """Events taken from the buffer and not yet written: in an unanswered frame, or in
        the writer's queue as it last said."""
        return self.writer_queued + (self._unsent[1] if self._unsent else 0)

    def count_drop(self, reason: str, n: int = 1) -> None:
        self._counted[reason] += n

    def stop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self.grace
            if self._attempt is not None:  # an exchange begun while running ends by then too
                self._attempt.reschedule(self._deadline)
        self._stopping = True
        self._retry_at = 0.0  # at shutdown, try the writer again at once
        self._wake.set()

    async def run(self) -> None:
        try:
            while not self._stopping:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._wake.wait()
                self._wake.clear()
                await self.flush()
            await self._last_flush()
        finally:
            self._disconnect()

    async def _last_flush(self) -> None:
        """At stop: send what is held until it is all taken or the grace is over."""
        loop = asyncio.get_running_loop()
        assert self._deadline is not None
        while self._pending() and loop.time() < self._deadline:
            await self.flush()
            if self._pending():
                await asyncio.sleep(max(0.0, min(self._retry_at, self._deadline) - loop.time()))
        if lost := self._pending():
            log.error(
                "the writer process did not take %d event(s) within the shutdown grace: lost",
                lost,
            )

    def _pending(self) -> int:
        return len(self.buffer) + (self._unsent[1] if self._unsent else 0)

    def _next_frame(self) -> tuple[bytes, int] | None:
        items = self.buffer.take(self.batch_size)
        overflow, errors = self.buffer.take_refused()
        self._counted[Drop.QUEUE_FULL] += overflow
        self._counted[Drop.CAPTURE_ERROR] += errors
        drops = {}
        for reason, n in list(self._counted.items()):
            if n > 0:  # a frame carries a bounded count; the rest goes with the next one
                drops[str(reason)] = min(n, MAX_COUNT)
            self._counted[reason] = n - min(n, MAX_COUNT)
        self._counted = +self._counted
        if not items and not drops:
            return None
        return frame(ITEMS, (tuple(wire_item(i) for i in items), drops)), len(items)

    async def flush(self) -> None:
        """Send what is queued now, frame by frame, while the writer takes it."""
        while True:
            if self._unsent is None:
                self._unsent = self._next_frame()
                if self._unsent is None:
                    if self.writer_queued and self._conn is not None:
                        await self._exchange(EMPTY)  # the writer's counters, afresh
                    return
            if not await self._exchange(self._unsent[0]):
                return  # the writer is away: the frame waits for the next flush
            self._unsent = None
            if not self.buffer and not self._counted:
                return
            await asyncio.sleep(0)  # let the worker's requests run between frames

    async def _exchange(self, data: bytes) -> bool:
        loop = asyncio.get_running_loop()
        if self._conn is None and loop.time() < self._retry_at:
            return False
        try:
            async with asyncio.timeout_at(self._deadline) as attempt:
                self._attempt = attempt
                if self._conn is None:
                    self._conn = await asyncio.open_unix_connection(self.path)
                reader, writer = self._conn
                writer.write(data)
                await writer.drain()
                answer = await read_frame(reader)
                if answer is None or answer[0] != STATS:
                    raise FrameError("the writer did not answer with its counters")
                self.writer_queued, self.stored, drops = read_stats(answer[1])
                self.drops = Counter(drops)
        except (OSError, FrameError, TimeoutError) as exc:
            self._disconnect()
            self._failures += 1
            if self._failures == 1 or self._failures % 30 == 0:  # an outage logs, not a flood
                log.warning(
                    "the writer process is unreachable (%s); events wait here, bounded",
                    exc.__class__.__name__,
                )
            delay = min(0.05 * 2 ** min(self._failures - 1, 6), MAX_BACKOFF)
            self._retry_at = loop.time() + delay
            return False
        finally:
            self._attempt = None
        if self._failures:
            log.warning("the writer process is reachable again")
        self._failures = 0
        return True

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn[1].close()


async def forward_batch(
    path: Path, rows: list[tuple[object, ...]], drops: Counter[str], day: str, batch: str
) -> tuple[int, str]:
    """Have the writer process store a remote batch: (HTTP status, detail) once it is stored
    (200) or refused (422 for good, 503 for now). One connection per batch: they are rare
    and large, and must not wait behind a worker's stream of items."""
    try:
        async with asyncio.timeout(BATCH_TIMEOUT):
            reader, writer = await asyncio.open_unix_connection(path)
            try:
                writer.write(frame(BATCH, (tuple(rows), dict(drops), day, batch)))
                await writer.drain()
                answer = await read_frame(reader)
            finally:
                writer.close()
        if answer is None or answer[0] != RESULT:
            raise FrameError("the writer did not answer the batch")
        return read_result(answer[1])
    except (OSError, FrameError, TimeoutError) as exc:
        log.warning("a batch could not reach the writer process: %s", exc.__class__.__name__)
        return 503, "the writer process could not store the batch now; retry later"
