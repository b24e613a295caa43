"""Pseudonyms and sealing: what replaces raw identifiers before anything touches disk.

- visitor: keyed BLAKE2b-128 over site, IP and user-agent with the day's random key, so a
  visitor is countable within a day and unlinkable across days once the key is destroyed;
- network: the IP truncated to its /24 (IPv4) or /48 (IPv6) prefix;
- sealed endpoint: "IP port" under AES-GCM with the day's short-retention seal key, readable
  only until that key is destroyed.
"""

import datetime as dt
import hashlib
import secrets
import socket

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import KeyStoreError
from .keys import KeyStore


def network_of(packed: bytes) -> str:
    """The /24 (IPv4) or /48 (IPv6) prefix of a packed address, e.g. '203.0.113.0/24'."""
    if len(packed) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, packed[:3] + bytes(1))}/24"
    return f"{socket.inet_ntop(socket.AF_INET6, packed[:6] + bytes(10))}/48"


class Pseudonymiser:
    """Holds the unwrapped keys of the days in use; forgets a day's keys when told to."""

    def __init__(self, keystore: KeyStore) -> None:
        self._keystore = keystore
        self._hashers: dict[dt.date, hashlib.blake2b | None] = {}
        self._sealers: dict[dt.date, tuple[str, AESGCM] | None] = {}
        self._subject_hasher: hashlib.blake2b | None = None

    def visitor(self, day: dt.date, site: str, ip: str, agent: bytes) -> str | None:
        """The day's pseudonym, or None when that day's key is gone (the event is too old)."""
        try:
            base = self._hashers[day]
        except KeyError:
            found = self._keystore.key_for("visitor", day)
            base = hashlib.blake2b(key=found[1], digest_size=16) if found else None
            self._hashers[day] = base
        if base is None:
            return None
        h = base.copy()  # pre-keyed copy: ~0.5 µs instead of re-keying per event
        h.update(site.encode())
        h.update(b"\0")
        h.update(ip.encode())
        h.update(b"\0")
        h.update(agent)
        return h.hexdigest()

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

    def subject(self, subject_id: str) -> str:
        """The subject pseudonym of a cookie id or an app's user id: stable, keyed, one-way."""
        if self._subject_hasher is None:
            key = self._keystore.named_key("subject-hash")
            self._subject_hasher = hashlib.blake2b(key=key, digest_size=16)
        h = self._subject_hasher.copy()
        h.update(subject_id.encode())
        return h.hexdigest()

    def forget_before(self, day: dt.date) -> None:
        """Drop cached keys of days before `day`, so a destroyed key leaves memory too."""
        for cache in (self._hashers, self._sealers):
            for d in [d for d in cache if d < day]:
                del cache[d]


def seal_for_subject(keystore: KeyStore, subject: str, data: bytes) -> tuple[str, bytes]:
    """(key id, nonce || ciphertext) under the subject's own key, made on first use."""
    key_id = f"subject-{subject}"
    key = keystore.named_key(key_id)
    if key is None:
        raise KeyStoreError(f"the key of subject {subject} was destroyed: their data was erased")
    nonce = secrets.token_bytes(12)
    return key_id, nonce + AESGCM(key).encrypt(nonce, data, key_id.encode())


def unseal(keystore: KeyStore, key_id: str, blob: bytes) -> bytes | None:
    """The plaintext, or None once its key has been destroyed."""
    key = keystore.key_by_id(key_id)
    if key is None:
        return None
    return AESGCM(key).decrypt(blob[:12], blob[12:], key_id.encode())
