"""FastAPI with veil: one `add_middleware` line.

    VEIL_CONFIG=veil.toml uvicorn examples.fastapi_app:app --no-access-log --no-proxy-headers

FastAPI runs Starlette's middleware stack around the whole app, lifespan included: veil serves
/veil/veil.js and /veil/e, starts its writer at startup and flushes it at shutdown. Config comes
from $VEIL_CONFIG or ./veil.toml; see what was collected with `veil query --by browser`.
"""

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from veil import Veil, VeilMiddleware

veil = Veil.from_config()
app = FastAPI()
app.add_middleware(VeilMiddleware, veil=veil)


@app.get("/", response_class=HTMLResponse)
async def home() -> str:
    return (
        "<!doctype html><title>veil + FastAPI</title>"
        '<script src="/veil/veil.js" defer></script><h1>Hello from FastAPI</h1>'
    )
