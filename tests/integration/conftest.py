"""Fixtures that start real networks: separate processes on 127.0.0.1, torn down after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qkdn.bringup import bring_down, bring_up
from qkdn.state_files import StateDir

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "topologies" / "paper.yaml"


class RunningNetwork:
    def __init__(self, state: StateDir, endpoints: dict[str, Any]):
        self.state = state
        self.endpoints = endpoints

    def netconf(self, node: str) -> dict[str, Any]:
        return self.endpoints["nodes"][node]["netconf"]


@pytest.fixture(scope="module")
def paper_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNetwork]:
    """The paper's network without a controller (static provisioning over NETCONF)."""
    state = StateDir(tmp_path_factory.mktemp("paper"))
    endpoints = bring_up(PAPER, state, timeout=90, controller=False)
    try:
        yield RunningNetwork(state, endpoints)
    finally:
        bring_down(state)


@pytest.fixture(scope="module")
def controlled_paper_network(tmp_path_factory: pytest.TempPathFactory
                             ) -> Iterator[RunningNetwork]:
    """The paper's network with its SDN controller admitting and configuring sessions."""
    state = StateDir(tmp_path_factory.mktemp("paper-sdn"))
    endpoints = bring_up(PAPER, state, timeout=120, controller=True)
    try:
        yield RunningNetwork(state, endpoints)
    finally:
        bring_down(state)
