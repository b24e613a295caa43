"""The hot path reads only the headers veil needs, in one pass, with dict()'s semantics."""

from veil.capture import CaptureBuffer, Captured, VeilCookies

NEEDED = ("agent", "accept_language", "sec_gpc", "sec_dnt", "forwarded", "host", "cookies")


def scope(headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "path": "/p", "client": ("10.0.0.1", 4321), "headers": headers}


def captured(raw: list[tuple[bytes, bytes]], **kw) -> Captured:
    buffer = CaptureBuffer(limit=10, wake_at=10)
    assert buffer.capture(scope(raw), "connection", **kw)
    (item,) = buffer.take(1)
    return item


def test_many_unrelated_and_repeated_headers_capture_exactly_the_needed_values():
    noise = [(f"x-app-{i}".encode(), b"v%d" % i) for i in range(40)]
    headers = [
        (b"authorization", b"Bearer secret"),
        (b"user-agent", b"first agent"),
        *noise[:20],
        (b"x-forwarded-for", b"203.0.113.9"),  # the client's own line ...
        (b"accept-language", b"de"),
        (b"cookie", b"__Host-veil_sid=first"),
        (b"host", b"shop.example.org"),
        (b"sec-gpc", b"1"),
        (b"dnt", b"1"),
        *noise[20:],
        (b"user-agent", b"last agent"),
        (b"x-forwarded-for", b"198.51.100.7"),  # ... and the one the proxy added after it
        (b"cookie", b"other=1; __Host-veil_sid=last; __Host-veil_optout=a.b"),
        (b"accept-language", b"fr-CH, fr;q=0.9"),
    ]
    item = captured(headers)
    expected = dict(headers)  # what veil captured before: the LAST occurrence wins
    assert item.agent == expected[b"user-agent"] == b"last agent"
    assert item.accept_language == expected[b"accept-language"]
    assert item.forwarded == expected[b"x-forwarded-for"] == b"198.51.100.7"
    assert (item.host, item.sec_gpc, item.sec_dnt) == (b"shop.example.org", b"1", b"1")
    assert item.cookies == VeilCookies("last", "a.b")
    assert (item.purpose, item.peer, item.port, item.request_path) == (
        "connection",
        "10.0.0.1",
        4321,
        "/p",
    )
    # nothing else is kept: no other header's value appears anywhere in the record
    kept = repr(tuple(item))
    assert "secret" not in kept and "x-app" not in kept and "v39" not in kept


def test_absent_and_empty_headers_give_what_dict_gave():
    item = captured([(b"cookie", b""), (b"accept", b"*/*")])
    assert (item.agent, item.accept_language, item.forwarded, item.host) == (b"", b"", b"", b"")
    assert (item.sec_gpc, item.sec_dnt) == (None, None)
    assert item.cookies is None  # an empty Cookie header is no cookies, not b""
    assert captured([]).cookies is None


def test_headers_an_endpoint_already_parsed_are_used_instead_of_the_scope():
    parsed = {b"user-agent": b"parsed", b"host": b"h", b"cookie": b"__Host-veil_optout=x"}
    beacon = {"screen_w": 1, "screen_h": 1, "pixel_ratio": 1.0, "language": "en"}
    item = captured([(b"user-agent", b"scope")], beacon=beacon, headers=parsed)
    assert (item.agent, item.host, item.cookies) == (b"parsed", b"h", VeilCookies(None, "x"))
    assert item.beacon == beacon and item.request_path is None


def test_every_needed_field_is_a_captured_field():
    assert set(NEEDED) <= set(Captured._fields)
