"""A store that forwards batches to a collector's `POST /veil/batch` instead of keeping them.

Rows are pseudonymised already; the batch is signed with the shared secret. A 2xx answer means
the collector has committed the batch. Network errors and 5xx/408/429 are transient (the
writer retries with backoff); any other 4xx is a permanent refusal (`BatchRejected`).
"""

from collections import Counter
from collections.abc import Sequence

import httpx

from ..config import RemoteConfig
from ..errors import QueryError, RowsRefused, StoreError
from ..policy import Policy
from .columns import Row
from .wire import encode_batch, load_secret, signed_headers

_TRANSIENT = {408, 425, 429}


class BatchRejected(RowsRefused):
    """The collector refused the batch for good: retrying would not help."""


class RemoteStore:
    def __init__(self, cfg: RemoteConfig) -> None:
        secret = load_secret(cfg.secret_file)
        if secret is None:
            raise StoreError(
                "remote.url is set but no shared secret: set $VEIL_REMOTE_SECRET "
                "or remote.secret_file"
            )
        if not cfg.url:  # open_store picks this store only when remote.url is set
            raise StoreError("remote.url is not set: there is no collector to send to")
        self.url: str = cfg.url
        self._secret = secret
        self._timeout = cfg.timeout
        self._client: httpx.AsyncClient | None = None

    async def open(self, policy: Policy | None = None) -> None:
        self._client = httpx.AsyncClient(timeout=self._timeout)

    async def write(
        self, rows: Sequence[Row], drops: Counter[str], day: str, batch: str | None = None
    ) -> None:
        if self._client is None:
            raise StoreError("the store is not open")
        body = encode_batch(list(rows), drops, day, batch)
        try:
            r = await self._client.post(
                self.url, content=body, headers=signed_headers(self._secret, body)
            )
        except httpx.HTTPError as exc:
            raise StoreError(f"collector unreachable: {exc.__class__.__name__}") from None
        if r.is_success:
            return
        detail = (
            r.json().get("detail", "") if r.headers.get("content-type", "").endswith("json") else ""
        )
        message = f"collector answered {r.status_code}: {detail}".rstrip(": ")
        if r.status_code >= 500 or r.status_code in _TRANSIENT:
            raise StoreError(message)
        raise BatchRejected(message)

    async def drop_counts(self, since_day: str | None = None) -> dict[str, int]:
        raise QueryError(f"this app forwards its events to {self.url}: query the collector")

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
