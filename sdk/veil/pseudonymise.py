"""Pseudonyms and sealing: what replaces raw identifiers before anything touches disk.

- visitor: keyed BLAKE2b-128 over site, IP, user-agent (and the subject cookie, when the
  browser holds one) with the day's random key, so a visitor is countable within a day and
  unlinkable across days once the key is destroyed;
- network: keyed BLAKE2b-128 over site and the IP's /24 (IPv4) or /48 (IPv6) prefix with the
  same day's key (personalised apart from the visitor's), so an analyst can count distinct
  networks within a day, yet one household's days do not share a value. The clear prefix is
  never stored: beside OS, browser and screen it re-linked one person's daily pseudonyms
  (bench/relinking.py);
- screen and pixel ratio: coarsened to classes (below), the quasi-identifiers that cost the
  analyst least and singled out the most;
- sealed endpoint: "IP port" under AES-GCM with the day's short-retention seal key, readable
  only until that key is destroyed.
"""

import bisect
import datetime as dt
import hashlib
import secrets
import socket
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .caches import ENTRY_OVERHEAD, ByteLRU
from .errors import KeyStoreError
from .store import subject_keys
from .store.base import LocalStore
from .store.keys import KeyStore


def network_of(packed: bytes) -> str:
    """The /24 (IPv4) or /48 (IPv6) prefix of a packed address, e.g. '203.0.113.0/24': for
    messages and tests, never stored (the `network` column holds its daily pseudonym)."""
    if len(packed) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, packed[:3] + bytes(1))}/24"
    return f"{socket.inet_ntop(socket.AF_INET6, packed[:6] + bytes(10))}/48"


_NETWORK = b"veil-network"  # BLAKE2b personalisation: the same day key, a separate function

# Screens are kept as the width breakpoint at or below them (CSS pixels; the height not at all)
# and pixel ratios as the nearest of 1, 1.5, 2 and 3: exact sizes made most returning visitors
# unique among a day's visitors, and re-linkable across days (bench/relinking.py measures it).
SCREEN_BREAKPOINTS = (0, 576, 768, 992, 1200, 1400, 1920, 2560)


def screen_class(width: int) -> int:
    """The breakpoint at or below `width`: 1366 → 1200, 1920 → 1920, 390 → 0."""
    return SCREEN_BREAKPOINTS[bisect.bisect_right(SCREEN_BREAKPOINTS, width) - 1]


def ratio_class(ratio: float) -> float:
    """1, 1.5, 2 or 3 (3 or more): the asset densities a designer chooses between."""
    return 1.0 if ratio < 1.25 else 1.5 if ratio < 1.75 else 2.0 if ratio < 2.5 else 3.0


def network_prefix(packed: bytes) -> bytes:
    """The /24 (IPv4) or /48 (IPv6) prefix of a packed address, as bytes."""
    return packed[:3] if len(packed) == 4 else packed[:6]


def _visitor(base: hashlib.blake2b, site: str, ip: str, agent: bytes, cookie: str | None) -> str:
    h = base.copy()  # pre-keyed copy: ~0.5 µs instead of re-keying per event
    h.update(site.encode())
    h.update(b"\0")
    h.update(ip.encode())
    h.update(b"\0")
    h.update(agent)
    if cookie:
        h.update(b"\0")
        h.update(cookie.encode())
    return h.hexdigest()


Hashers = tuple[hashlib.blake2b, hashlib.blake2b]  # (visitor, network)


def _weigh_hashers(key: tuple[dt.date, str], _: Hashers) -> int:
    return ENTRY_OVERHEAD + 2 * 448 + 64 + 32 + 49 + len(key[1])  # a blake2b object is 448 B


class Pseudonymiser:
    """Holds the unwrapped keys of the days in use; forgets a day's keys when told to."""

    def __init__(self, keystore: KeyStore) -> None:
        self._keystore = keystore
        # day → (visitor hasher, network hasher), pre-keyed; None once the day's key is gone
        self._hashers: dict[dt.date, Hashers | None] = {}
        # (day, site) → the day's hashers already fed the site and its separator: the site is
        # what every event of a deployment shares (a crafted Host makes up more: bounded)
        self._sited: ByteLRU[tuple[dt.date, str], Hashers] = ByteLRU(1 << 16, _weigh_hashers)
        self._sealers: dict[dt.date, tuple[str, AESGCM] | None] = {}

    def _day(self, day: dt.date) -> tuple[hashlib.blake2b, hashlib.blake2b] | None:
        try:
            return self._hashers[day]
        except KeyError:
            found = self._keystore.key_for("visitor", day)
            hashers = (
                (
                    hashlib.blake2b(key=found[1], digest_size=16),
                    hashlib.blake2b(key=found[1], digest_size=16, person=_NETWORK),
                )
                if found
                else None
            )
            self._hashers[day] = hashers
            return hashers

    def pseudonyms(
        self,
        day: dt.date,
        site: str,
        ip: str,
        agent: bytes,
        packed: bytes,
        cookie: str | None = None,
    ) -> tuple[str, str] | None:
        """(visitor, network) of the day, or None when that day's key is gone (too old).

        `cookie`, the subject cookie a browser sends (verified or not), splits the visitor: the
        rows of a browser holding a subject cookie share no pseudonym with its rows from before
        it had one (or with another subject's), so whoever pairs a subject's row with its
        cookieless twin reaches only that day's rows sent with the same cookie.
        """
        hashers = self._sited.get((day, site)) or self._site_day(day, site)
        if hashers is None:
            return None
        # the same bytes as _visitor feeds, site and its separator already in the copy
        v = hashers[0].copy()
        v.update(ip.encode() + b"\0")
        v.update(agent)
        if cookie:
            v.update(b"\0" + cookie.encode())
        n = hashers[1].copy()
        n.update(packed[:3] if len(packed) == 4 else packed[:6])  # network_prefix
        return v.hexdigest(), n.hexdigest()

    def _site_day(self, day: dt.date, site: str) -> Hashers | None:
        hashers = self._day(day)
        if hashers is None:
            return None
        fed = hashers[0].copy(), hashers[1].copy()
        for h in fed:
            h.update(site.encode() + b"\0")
        self._sited.put((day, site), fed)
        return fed

    def visitor(
        self, day: dt.date, site: str, ip: str, agent: bytes, cookie: str | None = None
    ) -> str | None:
        """The day's visitor pseudonym, or None when that day's key is gone."""
        hashers = self._day(day)
        return None if hashers is None else _visitor(hashers[0], site, ip, agent, cookie)

    def seal(self, day: dt.date, ip: str, port: int | None) -> tuple[str, bytes] | None:
        """(key id, nonce || ciphertext) of "IP port", or None when the day's key is gone."""
        try:
            found = self._sealers[day]
        except KeyError:
            key = self._keystore.key_for("seal", day)
            found = (key[0], AESGCM(key[1])) if key else None
            self._sealers[day] = found
        if found is None:
            return None
        key_id, aead = found
        nonce = secrets.token_bytes(12)
        return key_id, nonce + aead.encrypt(nonce, f"{ip} {port or ''}".encode(), key_id.encode())

    def forget_before(self, day: dt.date) -> None:
        """Drop cached keys of days before `day`, so a destroyed key leaves memory too."""
        for cache in (self._hashers, self._sealers):
            for d in [d for d in cache if d < day]:
                del cache[d]
        self._sited.clear()  # the keyed copies of every day: refilled from the days kept


async def subject_key(store: LocalStore, keystore: KeyStore, subject: str) -> tuple[str, bytes]:
    """(key id, key) of the subject's own key: the one subject_keys maps them to, made on
    first use under a random id (the keystore names no one). An erased subject has no
    mapping any more, so a returning one gets a fresh key."""
    local = subject_keys.sqlite_of(store)
    key_id = subject_keys.key_of(local.db, subject)
    if key_id is None:
        fresh = f"subject-key-{secrets.token_hex(16)}"
        keystore.named_key(fresh)
        async with local._writing() as db:
            key_id = subject_keys.claim(db, subject, fresh, time.time())
        if key_id != fresh:  # another writer mapped them first: ours serves nothing
            await keystore.erase_off_loop([fresh])
    key = keystore.key_by_id(key_id)
    if key is None:
        raise KeyStoreError("the subject's key was destroyed: their data was erased")
    return key_id, key


async def seal_for_subject(
    store: LocalStore, keystore: KeyStore, subject: str, data: bytes
) -> tuple[str, bytes]:
    """(key id, nonce || ciphertext) under the subject's own key (`subject_key`)."""
    key_id, key = await subject_key(store, keystore, subject)
    nonce = secrets.token_bytes(12)
    return key_id, nonce + AESGCM(key).encrypt(nonce, data, key_id.encode())


def unseal(keystore: KeyStore, key_id: str, blob: bytes) -> bytes | None:
    """The plaintext, or None once its key has been destroyed."""
    key = keystore.key_by_id(key_id)
    if key is None:
        return None
    return AESGCM(key).decrypt(blob[:12], blob[12:], key_id.encode())
