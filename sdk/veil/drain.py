"""What drains a `Veil`'s capture buffer: the in-process `BatchWriter` by default, or
another implementation a host passes to `Veil(..., drain=...)`.

`veil serve --workers N` uses the seam: its HTTP workers only capture, and their drain
forwards what they capture to one writer process, which runs the pipeline and the store
(veil_collector/forwarder.py). The middleware keeps the in-process writer: an app does not
grow processes it did not ask for.
"""

from collections.abc import Callable, Mapping
from typing import Protocol

from .capture import CaptureBuffer


class Drain(Protocol):
    """Takes what the buffer holds and sees that it is stored (or counted as dropped)."""

    @property
    def stored(self) -> int:
        """Events stored so far."""

    @property
    def drops(self) -> Mapping[str, int]:
        """Events dropped so far, by reason."""

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count something refused outside the pipeline."""

    async def run(self) -> None:
        """Drain until `stop()`, then flush what is left (within the shutdown grace)."""

    def stop(self) -> None:
        """End `run` after a last flush. Called on the drain's event loop."""

    async def flush(self) -> None:
        """Hand on everything queued now."""


# Given the Veil's capture buffer (the drain sets its `wake`), the drain to run.
DrainFactory = Callable[[CaptureBuffer], Drain]
