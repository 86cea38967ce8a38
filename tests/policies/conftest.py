"""Fixtures of the policy tests."""

from __future__ import annotations

import pytest
from policy_testkit import ThresholdModel, build_store


@pytest.fixture
def model() -> ThresholdModel:
    return ThresholdModel()


@pytest.fixture(scope="module")
def real_store():  # type: ignore[no-untyped-def]
    return build_store()
