"""Litestar with veil: wrap the application.

    VEIL_CONFIG=veil.toml uvicorn examples.litestar_app:app --no-access-log --no-proxy-headers

Not `middleware=[DefineMiddleware(VeilMiddleware, ...)]`: Litestar runs that middleware only
for requests that matched one of its routes (so /veil/* would answer 404) and never passes it
the lifespan. Wrapped around the application, veil sees every request and the lifespan, and
Litestar sees its own requests unchanged. Litestar's TestClient takes the wrapped app as well.
"""

from litestar import Litestar, MediaType, get

from veil import Veil, VeilMiddleware


@get("/", media_type=MediaType.HTML)
async def home() -> str:
    return (
        "<!doctype html><title>veil + Litestar</title>"
        '<script src="/veil/veil.js" defer></script><h1>Hello from Litestar</h1>'
    )


veil = Veil.from_config()
app = VeilMiddleware(Litestar(route_handlers=[home]), veil=veil)
