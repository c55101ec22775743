"""Encryption and keyed hashing of personal data (ID numbers, device secrets) stored in the database."""
from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet
from flask import current_app


def _key_material(purpose: bytes) -> bytes:
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_key_material(b"linli:encrypt:v1")))


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def keyed_hash(value: str) -> str:
    """A stable lookup key for a secret value that reveals nothing without SECRET_KEY."""
    return hmac.new(_key_material(b"linli:hash:v1"), value.encode(), hashlib.sha256).hexdigest()
