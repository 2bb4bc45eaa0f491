"""Tokens: high-entropy random strings shown once, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from occam.arena.schema import Setting

TEAM_PREFIX = "occ_team_"
ADMIN_PREFIX = "occ_admin_"
ADMIN_KEY = "admin_token_sha256"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)  # 256 bits


def hash_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def set_admin_token(session: Session, token: str | None = None) -> str:
    """Store a (new) admin token's hash and return the token (the only time it is visible)."""
    token = token or new_token(ADMIN_PREFIX)
    row = session.get(Setting, ADMIN_KEY)
    if row is None:
        session.add(Setting(key=ADMIN_KEY, value=hash_token(token)))
    else:
        row.value = hash_token(token)
    return token


def has_admin_token(session: Session) -> bool:
    return session.get(Setting, ADMIN_KEY) is not None


def is_admin_token(session: Session, token: str | None) -> bool:
    if not token or not token.startswith(ADMIN_PREFIX):
        return False
    stored = session.scalar(select(Setting.value).where(Setting.key == ADMIN_KEY))
    return stored is not None and hmac.compare_digest(stored, hash_token(token))
