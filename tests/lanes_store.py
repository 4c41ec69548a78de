"""A fresh experiment store per test for the lane tests: a database of its own on the real PostgreSQL
server of ``HP_TEST_POSTGRES_URL`` (``.ci/run`` sets it), skipped without one unless
``HP_REQUIRE_POSTGRES`` is set (CI), where a missing server fails the test."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest


def postgres_database() -> Iterator[str]:
    """Yield the URL of a new database on the test server (its password included; the lane steps take it from the env)."""
    base = os.environ.get("HP_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("HP_REQUIRE_POSTGRES"):
            pytest.fail("HP_TEST_POSTGRES_URL is not set but HP_REQUIRE_POSTGRES is")
        pytest.skip("no PostgreSQL server: set HP_TEST_POSTGRES_URL (.ci/run does)")
    import sqlalchemy as sa

    name = f"hp_lanes_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def split_password(url: str) -> tuple[str, str]:
    """(the URL without its password, the password): how a workflow passes them (YAML, Secret)."""
    import sqlalchemy as sa

    u = sa.engine.make_url(url)
    bare = sa.engine.URL.create(u.drivername, u.username, None, u.host, u.port, u.database, u.query)
    return bare.render_as_string(hide_password=False), u.password or ""
