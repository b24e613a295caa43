"""Subjects: who consent and records are about, in two namespaces that never meet.

- A browser subject is a random id veil issued in the subject cookie, with a MAC under a
  keystore key. A cookie veil did not issue (any other value, a wrong MAC) counts as no cookie,
  so a client cannot pick its own id, nor claim someone else's.
- An app user is the app's own user id, given only through the Python API: only the app speaks
  for its users; no browser request can name one.

Each namespace is hashed under its own key, so no cookie id and no app id can ever map to the
same pseudonym. The app namespace keeps the key it always had (`subject-hash`), so app users'
pseudonyms, ledgers and sealed records stay theirs across upgrades.
"""

import base64
import hashlib
import hmac
import re
import secrets

from .errors import FieldError, KeyStoreError
from .store.keys import KeyStore

APP_KEY = "subject-hash"
BROWSER_KEY = "browser-subject-hash"
COOKIE_MAC_KEY = "subject-cookie-mac"
_COOKIE = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}")
_MAC_CONTEXT = b"veil subject cookie\0"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Subjects:
    """Issues and verifies subject cookies; maps both namespaces to their pseudonyms."""

    def __init__(self, keystore: KeyStore) -> None:
        self._keystore = keystore
        self._hashers: dict[str, hashlib.blake2b] = {}
        self._mac_key: bytes | None = None

    def _key(self, key_name: str) -> bytes:
        key = self._keystore.named_key(key_name)
        if key is None:  # named keys live forever: only a damaged keystore loses one
            raise KeyStoreError(f"key {key_name} is missing from the keystore")
        return key

    def _hash(self, key_name: str, value: str) -> str:
        base = self._hashers.get(key_name)
        if base is None:
            base = hashlib.blake2b(key=self._key(key_name), digest_size=16)
            self._hashers[key_name] = base
        h = base.copy()
        h.update(value.encode())
        return h.hexdigest()

    def _mac(self, cookie_id: str) -> str:
        if self._mac_key is None:
            self._mac_key = self._key(COOKIE_MAC_KEY)
        digest = hmac.new(self._mac_key, _MAC_CONTEXT + cookie_id.encode(), hashlib.sha256)
        return _b64(digest.digest()[:16])

    def issue(self) -> tuple[str, str]:
        """A new browser subject: (cookie value, pseudonym)."""
        cookie_id = _b64(secrets.token_bytes(16))
        return f"{cookie_id}.{self._mac(cookie_id)}", self._hash(BROWSER_KEY, cookie_id)

    def browser(self, cookie_value: str | None) -> str | None:
        """The pseudonym of a subject cookie veil issued; None for anything else."""
        if not cookie_value or not _COOKIE.fullmatch(cookie_value):
            return None
        cookie_id, mac = cookie_value.split(".")
        if not hmac.compare_digest(mac, self._mac(cookie_id)):
            return None
        return self._hash(BROWSER_KEY, cookie_id)

    def app(self, user_id: str) -> str:
        """The pseudonym of an app's own user id (the Python API only)."""
        if not isinstance(user_id, str) or not user_id:
            raise FieldError(
                "subject_id must be a non-empty string: the app's own id for the person"
            )
        return self._hash(APP_KEY, user_id)
