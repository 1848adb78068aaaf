"""The whole-stack fixture for the cross-service tests in this folder (tests/stack_fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack_fixtures import Stack, run_stack


@pytest.fixture(scope="session")
def stack(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One running stack for the whole session, started by the first test that asks.

    A session fixture that depends on ``servers``, so it stops before them: the services
    close their PostgreSQL connections before PostgreSQL shuts down, instead of holding
    its shutdown up until the wait for it runs out.
    """
    root = tmp_path_factory.mktemp("stack")
    root.chmod(0o755)
    with run_stack(servers, root) as running:
        yield running
