"""Who may ask: every rights request acts for exactly one subject pseudonym, proven by

- veil's own subject cookie (subjects.py: a cookie veil did not issue, or whose MAC fails, is
  no subject at all);
- a short-lived token the app signs for a logged-in user (`Veil.subject_token`): the app
  pseudonym and an expiry under an HMAC with a keystore named key. It carries no user id, and
  only the app can mint one, as only the app speaks for its users;
- the DPO on the CLI, who verified the person out of band (a request received by mail).

Nothing in a request names a subject otherwise, so nobody can act on another subject's data:
a proof that fails is refused (and audited by the caller), never read as "no one".
"""

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from ..errors import FieldError, KeyStoreError, NotVerified
from ..store.keys import KeyStore
from ..subjects import Subjects

TOKEN_KEY = "subject-token-mac"
_TOKEN_CONTEXT = b"veil subject token v1\0"
_TOKEN = re.compile(r"v1\.([0-9a-f]{32})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")
MAX_TTL = 3600  # a token proves a login that just happened: an hour at most
CHANNELS = ("cookie", "token", "dpo")

# What a visitor without a subject cookie or token is told (the page shows it too).
UNLINKED = (
    "veil holds nothing it can link to you: without a subject cookie (given only when you "
    "consent) or a login with this site, what veil records about a visit is under a daily "
    "pseudonym that it cannot link to you, nor to your other days, by design. So there is "
    "nothing to access, export or delete. You can still opt out of everything that is not "
    "essential, with no account: refuse at /veil/consent, or send Global Privacy Control."
)


@dataclass(frozen=True, slots=True)
class Requester:
    """The one subject a request acts for, and how that was proven."""

    subject: str  # the pseudonym (never stored with the request: see requests.py)
    channel: str  # one of CHANNELS


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _token_mac(keystore: KeyStore, payload: str) -> str:
    key = keystore.named_key(TOKEN_KEY)
    if key is None:  # named keys live forever: only a damaged keystore loses one
        raise KeyStoreError(f"key {TOKEN_KEY} is missing from the keystore")
    return _b64(hmac.new(key, _TOKEN_CONTEXT + payload.encode(), hashlib.sha256).digest())


def sign_token(
    keystore: KeyStore, subjects: Subjects, user_id: str, ttl: int = 600, now: float | None = None
) -> str:
    """A token proving, until `ttl` seconds from now, that the bearer is the app's user
    `user_id` (by its pseudonym: the id itself is not in the token)."""
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 < ttl <= MAX_TTL:
        raise FieldError(f"ttl must be whole seconds between 1 and {MAX_TTL}, got {ttl!r}")
    expires = int((time.time() if now is None else now) + ttl)
    payload = f"v1.{subjects.app(user_id)}.{expires}"
    return f"{payload}.{_token_mac(keystore, payload)}"


def verify_token(keystore: KeyStore, token: str, now: float | None = None) -> str:
    """The pseudonym a token proves; NotVerified when it is malformed, altered or expired."""
    m = _TOKEN.fullmatch(token)
    if m is None:
        raise NotVerified("token-malformed", "the subject token is not one veil signed")
    payload = token[: token.rindex(".")]
    if not hmac.compare_digest(m[3], _token_mac(keystore, payload)):
        raise NotVerified("token-invalid", "the subject token's signature does not verify")
    if int(m[2]) <= (time.time() if now is None else now):
        raise NotVerified("token-expired", "the subject token has expired: ask the app anew")
    return m[1]


def identify(
    keystore: KeyStore,
    subjects: Subjects,
    cookie: str | None,
    token: str | None,
    now: float | None = None,
) -> Requester | None:
    """The subject a browser request proves; None when it brings no proof (a cookieless
    visitor: tell them UNLINKED). A token, sent on purpose by the app's page, decides when
    present (a browser sends its cookie along unasked; the request then acts for the token's
    subject alone). A proof that fails raises NotVerified: a forged cookie is no subject."""
    if token is not None:
        return Requester(verify_token(keystore, token, now), "token")
    if cookie is None:
        return None
    subject = subjects.browser(cookie)
    if subject is None:
        raise NotVerified("cookie-invalid", "the subject cookie is not one veil issued")
    return Requester(subject, "cookie")


def dpo_requester(subjects: Subjects, user_id: str | None, cookie: str | None) -> Requester:
    """The subject of a request the DPO received (by mail) and verified out of band: the
    app's user id, or the value of the visitor's subject cookie (which must verify)."""
    if (user_id is None) == (cookie is None):
        raise FieldError("name the subject by exactly one of --user-id or --cookie")
    if user_id is not None:
        return Requester(subjects.app(user_id), "dpo")
    subject = subjects.browser(cookie)
    if subject is None:
        raise NotVerified("cookie-invalid", "that is not a subject cookie veil issued")
    return Requester(subject, "dpo")
