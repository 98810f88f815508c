"""Fixtures of the routing tests: the Chromium page fixture of the front-end tests, and a
pynetdicom Storage SCP the test switches between refusing, stalling and accepting."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.frontends.conftest import open_page  # noqa: F401 - the Chromium page fixture (tests/frontends)
from tests.routing.peers import FlakyScp


@pytest.fixture(scope="module")
def flaky() -> Iterator[FlakyScp]:
    """A destination that refuses (0xA700) until the test says otherwise."""
    scp = FlakyScp().start()
    yield scp
    scp.stop()
