"""IMDS + ARM simulator: a faithful fake of Azure's Instance Metadata Service for demos and tests."""

from __future__ import annotations

from .scenario import Scenario, list_scenarios, load_scenario
from .server import RequestRecord, Simulator

__all__ = ["RequestRecord", "Scenario", "Simulator", "list_scenarios", "load_scenario"]
