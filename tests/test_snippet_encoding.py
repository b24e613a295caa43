"""The snippet on the wire: brotli or gzip when the client accepts it, identity otherwise,
`Vary: Accept-Encoding` on every variant and an ETag per encoding, over real HTTP through
`veil serve` (uvicorn). Bodies are read raw (httpx decodes nothing) and decoded here."""

import gzip
import os
import secrets
from collections.abc import Iterator

import brotli
import httpx
import pytest
from servers import ServerProcess

from veil.http.endpoints import PINNED_SCRIPT_PATH, SCRIPT, SCRIPT_HASH
from veil.http.snippet import choose

CONFIG = '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
PATHS = ["/veil/veil.js", PINNED_SCRIPT_PATH]
ETAGS = {"br": f'"{SCRIPT_HASH}-br"', "gzip": f'"{SCRIPT_HASH}-gz"', "": f'"{SCRIPT_HASH}"'}
DECODE = {"br": brotli.decompress, "gzip": gzip.decompress, "": bytes}


@pytest.fixture(scope="module")
def collector(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("snippet-encoding")
    config = tmp / "veil.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "VEIL_MASTER_KEY": secrets.token_hex(32)}
    server = ServerProcess.veil_serve(config, env, tmp / "collector.log", data=tmp / "data")
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def http(collector: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=collector.url) as client:
        del client.headers["accept-encoding"]  # each request says exactly what it accepts
        yield client


def fetch(
    http: httpx.Client, path: str, method: str = "GET", **headers: str
) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent: raw, not decoded."""
    with http.stream(method, path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


def check_variant(response: httpx.Response, raw: bytes, encoding: str) -> None:
    assert response.status_code == 200
    assert response.headers.get("content-encoding", "") == encoding
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["etag"] == ETAGS[encoding]
    assert response.headers["content-type"].startswith("text/javascript")
    assert int(response.headers["content-length"]) == len(raw)
    assert DECODE[encoding](raw) == SCRIPT


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("accept", "encoding"),
    [
        ("gzip, deflate, br, zstd", "br"),  # what Chromium sends
        ("br", "br"),
        ("gzip, deflate", "gzip"),
        ("gzip", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=1.0, br;q=0.5", "gzip"),  # the client's weights win
        ("br;q=0, gzip;q=0", ""),
        ("identity", ""),
        ("deflate", ""),
        ("*;q=0", ""),
        ("*", "br"),
    ],
)
def test_the_best_accepted_encoding_is_served(http, path, accept, encoding):
    response, raw = fetch(http, path, **{"Accept-Encoding": accept})
    check_variant(response, raw, encoding)


@pytest.mark.parametrize("path", PATHS)
def test_no_accept_encoding_gets_identity_with_vary(http, path):
    response, raw = fetch(http, path)
    check_variant(response, raw, "")
    assert raw == SCRIPT


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("accept", "encoding"), [("br", "br"), ("gzip", "gzip"), ("", "")])
def test_head_answers_the_variants_headers_without_a_body(http, path, accept, encoding):
    get, _ = fetch(http, path, **{"Accept-Encoding": accept})
    head, body = fetch(http, path, "HEAD", **{"Accept-Encoding": accept})
    assert head.status_code == 200 and body == b""
    for name in ("content-encoding", "content-length", "etag", "vary", "cache-control"):
        assert head.headers.get(name) == get.headers.get(name), name


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("accept", "encoding"), [("gzip, deflate, br", "br"), ("gzip", "gzip"), ("", "")]
)
def test_each_encoding_revalidates_with_its_own_etag(http, path, accept, encoding):
    mine = ETAGS[encoding]
    response, raw = fetch(http, path, **{"Accept-Encoding": accept, "If-None-Match": mine})
    assert response.status_code == 304 and raw == b""
    assert response.headers["etag"] == mine
    assert response.headers["vary"] == "Accept-Encoding"
    # another encoding's validator is not this variant's: the full body, in this encoding
    for other in set(ETAGS) - {encoding}:
        response, raw = fetch(
            http, path, **{"Accept-Encoding": accept, "If-None-Match": ETAGS[other]}
        )
        check_variant(response, raw, encoding)


def test_compressed_variants_are_smaller(http):
    sizes = {}
    for accept in ("br", "gzip", "identity"):
        _, raw = fetch(http, "/veil/veil.js", **{"Accept-Encoding": accept})
        sizes[accept] = len(raw)
    assert sizes["br"] < sizes["gzip"] < sizes["identity"] == len(SCRIPT), sizes


@pytest.mark.parametrize(
    ("accept", "encoding"),
    [
        (None, ""),
        ("", ""),
        ("BR, GZIP", "br"),
        ("x-gzip", "gzip"),
        ("gzip;q=0.8, br;q=0.8", "br"),  # a tie goes to the smaller one
        ("br;q=0.001", "br"),
        ("br;q=0.000, gzip;q=0.5", "gzip"),
        ("br;q=nan, gzip;q=oops", ""),  # malformed weights rule a coding out
        ("br;q=2", ""),
        ("*;q=0.5, br;q=0", "gzip"),
        ("gzip;q=0, *", "br"),
        (" , ;q=1, gzip ;  q = 0.3 ", "gzip"),
    ],
)
def test_accept_encoding_parsing(accept, encoding):
    assert choose(accept).encoding == encoding
