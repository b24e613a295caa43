"""Static files veil serves (the snippet, the dashboard's scripts): sent with an ETag, and a
304 when the client already holds that version."""

from starlette.responses import Response
from starlette.types import Scope


def cached(
    scope: Scope, body: bytes, etag: str, media_type: str, headers: dict[str, str]
) -> Response:
    """`body` with its ETag, or a 304 when the client already holds that version."""
    headers = {"ETag": etag, **headers}
    if etag in dict(scope["headers"]).get(b"if-none-match", b"").decode("latin-1"):
        return Response(status_code=304, headers=headers)
    return Response(body, headers=headers, media_type=media_type)
