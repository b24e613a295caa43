"""A site behind VeilMiddleware, for the consent attack tests under real uvicorn ($VEIL_CONFIG).

Every path answers a page. `/toss?value=…` is what an attacker's sibling subdomain serves: it
tries every way to plant a subject cookie for the parent domain (header and script).
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from veil import Veil, VeilMiddleware


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse("<!doctype html><p>page</p>")


async def toss(request: Request) -> HTMLResponse:
    value, parent = request.query_params["value"], request.query_params["parent"]
    attempts = [
        f"veil_sid={value}; Domain={parent}; Path=/",
        f"__Host-veil_sid={value}; Domain={parent}; Path=/; Secure",
        f"__Host-veil_sid={value}; Path=/",
    ]
    script = "".join(f"document.cookie = {a!r};" for a in attempts)
    response = HTMLResponse(f"<!doctype html><script>{script}</script><p>evil</p>")
    for attempt in attempts:
        response.headers.append("Set-Cookie", attempt)
    return response


app = VeilMiddleware(
    Starlette(routes=[Route("/toss", toss), Route("/{p:path}", page)]), veil=Veil.from_config()
)
