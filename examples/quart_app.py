"""Quart with veil: wrap Quart's ASGI callable (as Flask apps wrap `wsgi_app`).

    VEIL_CONFIG=veil.toml uvicorn examples.quart_app:app --no-access-log --no-proxy-headers

Wrapping `app.asgi_app` rather than `app` keeps `app` a Quart object: its test client, its
`test_app()` lifespan and `app.run()` all go through veil.
"""

from quart import Quart

from veil import Veil, VeilMiddleware

app = Quart(__name__)


@app.get("/")
async def home() -> str:
    return (
        "<!doctype html><title>veil + Quart</title>"
        '<script src="/veil/veil.js" defer></script><h1>Hello from Quart</h1>'
    )


veil = Veil.from_config()
app.asgi_app = VeilMiddleware(app.asgi_app, veil=veil)
