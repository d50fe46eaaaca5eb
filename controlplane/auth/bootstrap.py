"""The first admin token: stored when the database holds no token at all.

With ``EDGEFLEET_ADMIN_TOKEN`` set, its hash is stored as the admin token "bootstrap";
without it a random admin token is generated and printed once on stdout (never logged).
Replicas starting together on one database serialise on a lock (PostgreSQL advisory
lock, SQLite ``BEGIN IMMEDIATE``) and re-check inside it, so only one token is created.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pydantic import SecretStr
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from controlplane.auth.tokens import Role, display_prefix, hash_token, new_token, token_problem
from controlplane.errors import ConfigError
from controlplane.models import ApiToken, utcnow

logger = logging.getLogger(__name__)

BOOTSTRAP_NAME = "bootstrap"
#: ``pg_advisory_xact_lock`` key: "edgefleet tokens bootstrap".
_LOCK_KEY = 0x6566_746B_6273


def check_admin_token(token: SecretStr | None) -> str | None:
    """The configured bootstrap token (None if unset or blank); ConfigError if unusable."""
    if token is None or not token.get_secret_value().strip():
        return None
    value = token.get_secret_value().strip()
    problem = token_problem(value)
    if problem:
        raise ConfigError(f"EDGEFLEET_ADMIN_TOKEN {problem}")
    return value


def bootstrap_admin(engine: Engine, token: SecretStr | None, *, out: TextIO | None = None) -> bool:
    """Store the first admin token if there is no token yet; whether one was stored.

    A generated token is written to ``out`` (default stdout) in one line, once.
    """
    given = check_admin_token(token)
    value = given or new_token()
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            if conn.execute(select(func.count()).select_from(ApiToken)).scalar_one():
                if given:
                    logger.info("API tokens exist: EDGEFLEET_ADMIN_TOKEN not stored again")
                return False
            conn.execute(
                insert(ApiToken).values(
                    name=BOOTSTRAP_NAME,
                    role=Role.ADMIN.value,
                    token_sha256=hash_token(value),
                    prefix=display_prefix(value),
                    created_at=utcnow(),
                )
            )
            conn.commit()
    except IntegrityError:  # the same token stored by a replica that holds no lock
        return False
    if given:
        logger.info("stored EDGEFLEET_ADMIN_TOKEN as admin token %r", BOOTSTRAP_NAME)
    else:
        stream = out or sys.stdout
        print(
            f"admin token (shown once): {value}\n"
            "  (store it safely; use it as EDGECTL_TOKEN, create others with "
            "`edgectl tokens create`)",
            file=stream,
            flush=True,
        )
        logger.info("generated the bootstrap admin token (printed once on stdout)")
    return True
