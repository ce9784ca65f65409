"""Encryption of secrets stored in the database (router passwords, provider keys, ticket passwords).

`PORTAL_ENCRYPTION_KEY` holds one Fernet key, or several separated by commas during a key
rotation: the first encrypts, all of them decrypt.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy.types import Text, TypeDecorator


class SecretUnreadable(RuntimeError):
    """A stored secret cannot be decrypted with the configured keys."""


def cipher_from_config(value: str) -> MultiFernet:
    keys = [k.strip() for k in value.split(",") if k.strip()]
    return MultiFernet([Fernet(k) for k in keys])


def _cipher() -> MultiFernet:
    return current_app.extensions["kiosque.cipher"]


def encrypt(plaintext: str) -> str:
    return _cipher().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("A stored secret cannot be decrypted with PORTAL_ENCRYPTION_KEY.") from None


class EncryptedText(TypeDecorator):
    """A text column stored encrypted; the model sees plain text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else encrypt(value)

    def process_result_value(self, value, dialect):
        return None if value is None else decrypt(value)
