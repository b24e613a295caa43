"""The writer process's side of veil's Unix socket: frames from the HTTP workers into its
Veil (frames.py says what a frame is).

Items go into the writer's capture buffer, whose BatchWriter runs the pipeline and the
store; a frame is answered once its items are in. The writer's buffer is bounded like a
worker's: when it is full, the intake stops reading (and so answering) until there is room,
and the items wait in the workers, whose overflow is counted there. A remote middleware's
batch is stored and answered once stored. A connection that sends anything that is not a
frame of ours is closed and counted as the drop `invalid_frame`; the others go on.

The socket lives in its own directory beside the store, 0700, and is 0600 itself: only the
collector's own user can connect.
"""

import asyncio
import contextlib
import logging
import os
from collections import Counter
from pathlib import Path

from veil import Veil
from veil.config import Config
from veil.errors import Drop, FrameError, RowsRefused
from veil.files import PRIVATE_DIR, PRIVATE_FILE

from .frames import (
    BATCH,
    ITEMS,
    RESULT,
    STATS,
    frame,
    read_batch,
    read_frame,
    read_items,
    stats_payload,
)

log = logging.getLogger("veil.intake")
ROOM_POLL = 0.005  # s between looks at a full writer buffer


def socket_path(config: Config) -> Path:
    """Where the writer listens: `<store directory>/veil-serve/writer.sock`."""
    return config.store.path.resolve().parent / "veil-serve" / "writer.sock"


def private_run_dir(path: Path) -> None:
    """The socket's directory: made if missing, and 0700 whatever it was (it is veil's
    own, not the operator's)."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)


class Intake:
    def __init__(self, veil: Veil) -> None:
        self.veil = veil
        self.invalid = 0  # frames refused since start (also counted as drops)

    async def listen(self, path: Path) -> asyncio.AbstractServer:
        private_run_dir(path.parent)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a socket left by a writer that was killed
        mask = os.umask(0o177)  # the socket is born 0600, not for a moment wider
        try:
            server = await asyncio.start_unix_server(self.handle, path)
        finally:
            os.umask(mask)
        os.chmod(path, PRIVATE_FILE)
        return server

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (got := await read_frame(reader)) is not None:
                kind, payload = got
                if kind == ITEMS:
                    answer = frame(STATS, await self._items(payload))
                elif kind == BATCH:
                    answer = frame(RESULT, await self._batch(payload))
                else:
                    raise FrameError("a frame only the writer sends")
                writer.write(answer)
                await writer.drain()
        except FrameError as exc:
            self.invalid += 1
            self.veil.count_drop(Drop.INVALID_FRAME)
            log.warning("refused a connection on the writer's socket: %s", exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # a worker went away: what it had not had answered, it sends again
        finally:
            writer.close()

    async def _items(self, payload: object) -> tuple[object, ...]:
        items, drops = read_items(payload)
        buffer = self.veil.buffer
        # wait for room: the items stay in the worker meanwhile (its overflow is counted)
        while len(buffer) and len(buffer) + len(items) > buffer.limit:
            await asyncio.sleep(ROOM_POLL)
        buffer.put_many(items)
        for reason, n in drops.items():
            self.veil.count_drop(reason, n)
        s = self.veil.stats()
        return stats_payload(s.queued, s.stored, s.dropped)

    async def _batch(self, payload: object) -> tuple[int, str]:
        rows, drops, day, batch = read_batch(payload)
        store = self.veil.store
        if store is None or not self.veil.is_open:
            return 503, "the store is not open"
        try:
            await store.write(rows, Counter(drops), day, batch=batch)
        except RowsRefused as exc:  # for good: the sender must not retry these rows
            return 422, str(exc)
        except Exception as exc:  # the store failed now: the sender retries
            log.warning("a batch was not stored: %s", exc.__class__.__name__)
            return 503, "the store could not write the batch now; retry later"
        return 200, ""
