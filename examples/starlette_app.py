"""A small Starlette app with veil's middleware.

    VEIL_CONFIG=veil.toml uvicorn examples.starlette_app:app --no-access-log --no-proxy-headers

Config comes from $VEIL_CONFIG or ./veil.toml (built-in defaults when neither exists); see what
was collected with `veil query --by browser`.
"""

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from veil import Veil, VeilMiddleware

veil = Veil.from_config()


async def home(request):
    return HTMLResponse(
        "<!doctype html><title>veil example</title>"
        '<script src="/veil/veil.js" defer></script><h1>Hello</h1>'
        "<p>This request was counted, pseudonymised, by veil.</p>"
    )


async def stats(request):
    s = veil.stats()
    return JSONResponse({"queued": s.queued, "stored": s.stored, "dropped": s.dropped})


app = Starlette(
    routes=[Route("/", home), Route("/stats", stats)],
    middleware=[Middleware(VeilMiddleware, veil=veil)],
)
