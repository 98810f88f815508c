"""Fixtures of the mpi tests: the Chromium page fixture of the front-end tests."""
from __future__ import annotations

from tests.frontends.conftest import open_page  # noqa: F401 - the Chromium page fixture (tests/frontends)
