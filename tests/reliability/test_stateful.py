"""Model-based property test: memory, SQLite and PostgreSQL against one reference model.

The default budget keeps ``pytest`` quick; ``EVENTSTORE_HYPOTHESIS_PROFILE=thorough``
or ``pytest -m slow`` explore far more interleavings. Shrunk failures found here are kept
as explicit tests in ``test_regressions.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.reliability.budget import hypothesis_settings, thorough_settings
from tests.reliability.machine import StoreRunner, machine_for


def _run(url: str, budget: settings) -> None:
    runner = StoreRunner(url)
    try:
        run_state_machine_as_test(machine_for(runner), settings=budget)
    finally:
        runner.close()


def test_every_step_matches_the_model(store_url: str) -> None:
    _run(store_url, hypothesis_settings())


@pytest.mark.slow
def test_every_step_matches_the_model_thoroughly(store_url: str) -> None:
    _run(store_url, thorough_settings())
