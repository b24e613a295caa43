"""A site behind VeilMiddleware for the guards' tests under real uvicorn ($VEIL_CONFIG): every
path answers a page."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from veil import Veil, VeilMiddleware


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse("<!doctype html><p>page</p>")


app = VeilMiddleware(Starlette(routes=[Route("/{p:path}", page)]), veil=Veil.from_config())
