"""Encryption at rest for secrets (datasource passwords, notification channel secrets).

The keys are settings.OPSCENTER_ENCRYPTION_KEYS (OPSCENTER_ENCRYPTION_KEY, comma-separated,
the newest first): the newest encrypts, any of them decrypts. Values stored before the
keys were set (encrypted with the key derived from SECRET_KEY, the development default)
still decrypt, so `opscenter encryption rotate` can re-encrypt them with the newest key.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def _derived_key() -> bytes:
    digest = hashlib.sha256(("opscenter-secrets:" + settings.SECRET_KEY).encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _fernet() -> MultiFernet:
    keys = [key.encode() for key in settings.OPSCENTER_ENCRYPTION_KEYS]
    derived = _derived_key()
    if derived not in keys:
        keys.append(derived)  # last: decrypts older values, encrypts only without keys
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("secret cannot be decrypted: was the encryption key changed?") from exc


def reencrypt(token: str) -> str:
    """`token` encrypted again with the newest key (ValueError when no key decrypts it)."""
    if not token:
        return ""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("secret cannot be decrypted: was the encryption key changed?") from exc
