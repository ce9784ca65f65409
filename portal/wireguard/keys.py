"""WireGuard key pairs: X25519, written in standard base64 exactly as `wg genkey` and `wg pubkey` do.

`wg genkey` prints 32 random bytes clamped for Curve25519 (lowest 3 bits of the first byte
cleared, highest bit of the last byte cleared and the one below it set), base64 with padding:
44 characters ending in "=". `wg pubkey` prints the X25519 public key of such a private key the
same way (wg(8): https://www.man7.org/linux/man-pages/man8/wg.8.html; the clamping is RFC 7748
§5: https://www.rfc-editor.org/rfc/rfc7748#section-5).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from portal.wireguard.errors import InsecureKeyFile, InvalidKey

KEY_BYTES = 32
# 32 bytes in base64: 43 characters, the last of which carries only 4 bits, then "=".
KEY_PATTERN = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
_KEY_ANYWHERE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


def _decode(value: str, what: str) -> bytes:
    if not isinstance(value, str) or not KEY_PATTERN.fullmatch(value.strip()):
        raise InvalidKey(f"{what} is not a WireGuard key (44 characters of base64)")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise InvalidKey(f"{what} is not valid base64") from None
    if len(raw) != KEY_BYTES:  # cannot happen with the pattern above; kept as a guard
        raise InvalidKey(f"{what} does not decode to 32 bytes")
    return raw


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def clamp(raw: bytes) -> bytes:
    """The Curve25519 clamping `wg genkey` applies to its random bytes."""
    key = bytearray(raw)
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


def validate_public_key(value: str) -> str:
    """`value` stripped, or InvalidKey. The message never repeats the value."""
    _decode(value, "public key")
    return value.strip()


def public_key(private_key: str) -> str:
    """The public key of a base64 private key, as `wg pubkey` prints it."""
    raw = _decode(private_key, "private key")
    public = X25519PrivateKey.from_private_bytes(raw).public_key()
    return _encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


@dataclass(frozen=True)
class KeyPair:
    """A private key (never shown by repr) and its public key, both base64."""

    private: str = field(repr=False)
    public: str

    @classmethod
    def generate(cls) -> KeyPair:
        private = _encode(clamp(os.urandom(KEY_BYTES)))
        return cls(private=private, public=public_key(private))

    @classmethod
    def from_private(cls, private_key: str) -> KeyPair:
        return cls(private=private_key.strip(), public=public_key(private_key))


def redact_keys(text: str) -> str:
    """`text` with every key-shaped word replaced by "<key>" (for tool output put in errors)."""
    return _KEY_ANYWHERE.sub("<key>", text)


def read_private_key_file(path: str | os.PathLike[str]) -> KeyPair:
    """The key pair of a private key file that only its owner can read (mode 0600 or 0400).

    Refuses a file that is not regular, or that its group or others can read or write:
    a hub key others can read lets them impersonate the hub to every router.
    """
    where = str(path)
    try:
        fd = os.open(where, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise InsecureKeyFile(where, "no such file") from None
    except OSError as exc:
        raise InsecureKeyFile(where, exc.strerror or "cannot be opened") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InsecureKeyFile(where, "not a regular file")
        if info.st_mode & 0o077:
            raise InsecureKeyFile(where, f"mode {stat.S_IMODE(info.st_mode):04o}: only its owner may read it (0600)")
        with os.fdopen(fd, "r", encoding="ascii", errors="replace") as handle:
            fd = -1
            text = handle.read(200)
    finally:
        if fd >= 0:
            os.close(fd)
    try:
        return KeyPair.from_private(text)
    except InvalidKey:
        raise InsecureKeyFile(where, "does not hold a WireGuard private key") from None


def write_private_key_file(path: str | os.PathLike[str], private_key: str, *, replace: bool = False) -> Path:
    """Write a private key to `path` created with mode 0600 (never wider, whatever the umask)."""
    _decode(private_key, "private key")
    target = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(target, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (private_key.strip() + "\n").encode("ascii"))
    finally:
        os.close(fd)
    return target
