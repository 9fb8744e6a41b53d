"""Sealing what the fleet keeps in Redis: AES-256-GCM under a key the operator provides.

Redis is shared, snapshotted to disk and replicated, so nothing secret goes into it in the clear:
a day token or a session token handed to the next holder is sealed first, and only a process
holding the fleet key can read it back.

A sealed value is bytes, laid out as::

    version (1 byte, 0x01) | key id (4 bytes) | nonce (12 bytes) | ciphertext | GCM tag (16 bytes)

- the *key id* is the first 4 bytes of SHA-256 over a label and the key: it tells a value
  sealed with another key (a fleet with another key, or a key rotated away) from one that was
  altered, and it is all that ``repr(Sealer)`` shows;
- the *nonce* is random for every seal (96 bits, so a key can seal billions of values before a
  repeat becomes a concern; the fleet seals a few per account a day);
- the associated data is the label, the version and key id, and the Redis key name the value
  is stored under: a sealed value copied to another key does not open there.

Where the key comes from (``load_sealer``): an explicit ``key_file``, else the environment:
``BROKERGATE_FLEET_KEY`` (the key itself) or ``BROKERGATE_FLEET_KEY_FILE`` (a file holding it;
not both). A key is urlsafe base64 of 32 random bytes (``new_fleet_key()``, or ``brokergate
fleet keygen``). A key file must be private to its owner (no group or other permission bits),
as token files are: any other file is refused. Every process of a fleet needs the same key.

Rotation: previous keys open values but never seal them. They come from
``BROKERGATE_FLEET_KEY_PREVIOUS`` (comma-separated) and from the key file's further lines (the
first key line is the current key). To rotate without a single extra login: add the new key as
a previous key everywhere; then make it the current key everywhere, the old one previous; once
every value sealed with the old key has expired (a day token lives at most 36 hours in Redis),
drop the old key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from brokergate.engine._errors import ConfigurationError

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "PREVIOUS_ENV",
    "Sealer",
    "Unsealed",
    "load_sealer",
    "new_fleet_key",
]

#: The environment variables the fleet key may come from.
KEY_ENV = "BROKERGATE_FLEET_KEY"
KEY_FILE_ENV = "BROKERGATE_FLEET_KEY_FILE"
PREVIOUS_ENV = "BROKERGATE_FLEET_KEY_PREVIOUS"

VERSION = 1
KEY_BYTES = 32
KEY_ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = 1 + KEY_ID_BYTES + NONCE_BYTES
#: Binds every seal to this use (and this format), apart from any other use of the same key.
LABEL = b"brokergate fleet seal\x00"

HOW_TO_MAKE = (
    "make a fleet key with `brokergate fleet keygen` (or: python -c \"import base64, os; "
    "print(base64.urlsafe_b64encode(os.urandom(32)).decode())\"), write it to a file only its "
    f"owner can read (chmod 600) and name that file in {KEY_FILE_ENV}, or put the key itself in "
    f"{KEY_ENV}; every process of the fleet needs the same key")


def new_fleet_key() -> str:
    """A new fleet key: 32 random bytes, urlsafe base64 (44 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> bytes:
    """The 4 bytes that name ``key`` in what it seals (a hash: they reveal nothing of it)."""
    return hashlib.sha256(b"brokergate fleet key id\x00" + key).digest()[:KEY_ID_BYTES]


@dataclass(frozen=True, slots=True)
class Unsealed:
    """What ``Sealer.unseal`` found: ``data`` (the plaintext) or None and ``reason``, why not.

    The reason never holds the value or the key, so it can go into a notice or a log; the repr
    never shows ``data``.
    """

    data: bytes | None = field(repr=False)
    reason: str | None = None


class Sealer:
    """Seals with the current key; opens with the current key or any previous one.

    ``key`` and each of ``previous`` are 32 raw bytes (``load_sealer`` reads them from where the
    operator put them). The repr shows the current key's id only.
    """

    __slots__ = ("_current", "_keys", "key_id")

    def __init__(self, key: bytes, *, previous: Iterable[bytes] = ()) -> None:
        keys: dict[bytes, AESGCM] = {}
        for n, raw in enumerate((key, *previous)):
            if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
                which = "the fleet key" if n == 0 else f"previous fleet key {n}"
                raise ConfigurationError(f"{which} is not {KEY_BYTES} bytes: {HOW_TO_MAKE}")
            keys.setdefault(key_id(raw), AESGCM(raw))
        current = key_id(key)
        self._current = (current, keys[current])
        self._keys = keys
        #: The current key's id, in hex (what a notice or ``fleet status`` may show).
        self.key_id = current.hex()

    def __repr__(self) -> str:
        extra = len(self._keys) - 1
        also = f" (+{extra} previous)" if extra else ""
        return f"<Sealer key {self.key_id}{also}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Sealer is not picklable")

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every key this sealer opens with, the current one first."""
        return tuple(k.hex() for k in self._keys)

    def seal(self, data: bytes, name: str | bytes) -> bytes:
        """``data`` sealed with the current key for the Redis key ``name``."""
        kid, aead = self._current
        nonce = secrets.token_bytes(NONCE_BYTES)
        header = bytes([VERSION]) + kid
        return header + nonce + aead.encrypt(nonce, data, _associated(header, name))

    def unseal(self, sealed: bytes, name: str | bytes) -> Unsealed:
        """Open a value read from the Redis key ``name``; None and why, when it does not open."""
        if not isinstance(sealed, bytes) or len(sealed) < HEADER_BYTES + TAG_BYTES:
            return Unsealed(None, "not a sealed value (too short: truncated, or not written by "
                                  "brokergate)")
        if sealed[0] != VERSION:
            return Unsealed(None, f"sealed in an unknown format (version {sealed[0]}; this "
                                  f"brokergate reads version {VERSION})")
        header, kid = sealed[:1 + KEY_ID_BYTES], sealed[1:1 + KEY_ID_BYTES]
        aead = self._keys.get(kid)
        if aead is None:
            return Unsealed(None, f"sealed with another fleet key (key id {kid.hex()}; this "
                                  f"process has {', '.join(self.key_ids)})")
        nonce = sealed[1 + KEY_ID_BYTES:HEADER_BYTES]
        try:
            data = aead.decrypt(nonce, sealed[HEADER_BYTES:], _associated(header, name))
        except InvalidTag:
            return Unsealed(None, "does not authenticate: altered, truncated, or moved here "
                                  "from another Redis key")
        return Unsealed(data)


def _associated(header: bytes, name: str | bytes) -> bytes:
    where = name.encode("utf-8") if isinstance(name, str) else name
    return LABEL + header + where


def load_sealer(*, key_file: str | Path | None = None,
                env: Mapping[str, str] | None = None) -> Sealer:
    """The fleet's sealer, from ``key_file`` or the environment (see the module's docstring).

    ``ConfigurationError`` when there is no key, when a key is malformed or of the wrong length,
    or when a key file cannot be read or is not private; its message says how to make a key and
    never quotes one.
    """
    environ = os.environ if env is None else env
    if key_file is None:
        key_file = environ.get(KEY_FILE_ENV) or None
        if key_file is not None and environ.get(KEY_ENV):
            raise ConfigurationError(f"both {KEY_ENV} and {KEY_FILE_ENV} are set: set one of them")
    if key_file is not None:
        lines = _key_file_lines(Path(key_file))
        where = f"the fleet key file {key_file}"
        if not lines:
            raise ConfigurationError(f"{where} holds no key: {HOW_TO_MAKE}")
        current = _decode(lines[0], where)
        previous = [_decode(line, f"{where} (line {n} of its keys)")
                    for n, line in enumerate(lines[1:], 2)]
    else:
        text = environ.get(KEY_ENV, "").strip()
        if not text:
            raise ConfigurationError(f"no fleet key is configured: {HOW_TO_MAKE}")
        current = _decode(text, KEY_ENV)
        previous = []
    extra = [part.strip() for part in environ.get(PREVIOUS_ENV, "").split(",") if part.strip()]
    previous += [_decode(text, f"{PREVIOUS_ENV} (key {n})") for n, text in enumerate(extra, 1)]
    return Sealer(current, previous=previous)


def _decode(text: str, where: str) -> bytes:
    """One key from its urlsafe base64 (padding optional); the error never repeats it."""
    compact = text.strip()
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=b"-_",
                               validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where} is not a fleet key (not base64): "
                                 f"{HOW_TO_MAKE}") from None
    if len(raw) != KEY_BYTES:
        raise ConfigurationError(f"{where} is not a fleet key ({len(raw)} bytes, not "
                                 f"{KEY_BYTES}): {HOW_TO_MAKE}")
    return raw


def _key_file_lines(path: Path) -> list[str]:
    """The key lines of a private key file (blank lines and ``#`` comments skipped)."""
    try:
        # Not waiting on a FIFO planted where the file belongs; a symlink is followed (secret
        # mounts are made of them) and the file it reaches is what must be private.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigurationError(f"cannot read the fleet key file {path}: "
                                 f"{exc.strerror or type(exc).__name__}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigurationError(f"the fleet key file {path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if os.name == "posix" and mode & 0o077:
            raise ConfigurationError(
                f"the fleet key file {path} is not private (mode {mode:04o}: its group or others "
                f"have access); make it readable by its owner only: chmod 600 {path}")
        try:
            data = os.read(fd, 64 * 1024)
        except OSError as exc:
            raise ConfigurationError(f"cannot read the fleet key file {path}: "
                                     f"{exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    text = data.decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
