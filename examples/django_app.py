"""Django (ASGI) with veil: wrap the ASGI application, in your project's asgi.py.

    VEIL_CONFIG=veil.toml uvicorn examples.django_app:application --no-access-log \
        --no-proxy-headers

In a project, asgi.py ends with:

    application = VeilMiddleware(get_asgi_application(), veil=Veil.from_config())

Django's ASGIHandler does not speak the ASGI lifespan protocol (it raises on it); the
middleware answers it instead, so veil's writer starts with the server and flushes at
shutdown. This file is a whole one-file Django project, so that it runs as it is.
"""

import secrets

import django
from django.conf import settings

if not settings.configured:  # a real project has its settings module instead
    settings.configure(
        DEBUG=False,
        SECRET_KEY=secrets.token_urlsafe(32),
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
    )
    django.setup()

from django.core.asgi import get_asgi_application  # after the settings
from django.http import HttpRequest, HttpResponse
from django.urls import path

from veil import Veil, VeilMiddleware


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        "<!doctype html><title>veil + Django</title>"
        '<script src="/veil/veil.js" defer></script><h1>Hello from Django</h1>'
    )


urlpatterns = [path("", home)]

veil = Veil.from_config()
application = VeilMiddleware(get_asgi_application(), veil=veil)
