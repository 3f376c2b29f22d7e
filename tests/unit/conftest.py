"""Unit tests never touch the network: every socket is refused (pytest-socket)."""

import pytest


@pytest.fixture(autouse=True)
def _no_network(socket_disabled: None) -> None:
    return None
