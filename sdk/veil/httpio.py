"""Reading requests safely: bounded bodies, and telling same-site from cross-site POSTs."""

from starlette.types import Receive, Scope

from .problems import Problem


def _too_large(limit: int) -> Problem:
    return Problem(413, "body-too-large", "Body too large",
                   f"the body must be at most {limit} bytes")


async def read_body(scope: Scope, receive: Receive, limit: int,
                    headers: dict[bytes, bytes] | None = None) -> bytes:
    """The request body, or a 413 as soon as it is known to exceed `limit` bytes."""
    length = (headers if headers is not None else dict(scope["headers"])).get(b"content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise _too_large(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Problem(400, "client-disconnected", "Client disconnected",
                          "the client went away before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def origin_allowed(headers: dict[bytes, bytes]) -> bool:
    """False for a browser's cross-site request (CSRF): by Origin, else Sec-Fetch-Site."""
    origin = headers.get(b"origin")
    if origin is not None:  # "null" (sandboxed, opaque origins) is never our own page
        return origin.split(b"://", 1)[-1] == headers.get(b"host", b"")
    return headers.get(b"sec-fetch-site", b"same-origin") in (b"same-origin", b"none")
