"""``allocate_quotas`` when the counts' int64 sum would wrap: quotas still sum to the budget."""

from __future__ import annotations

from engine import allocate_quotas


def test_counts_summing_past_int64() -> None:
    assert allocate_quotas([2**62, 2**62, 2**62], 5).tolist() == [2, 2, 1]
    assert allocate_quotas([2**63 - 1, 1], 5).tolist() == [4, 1]
    assert allocate_quotas([2**63 - 1, 2**63 - 1], 2**64).tolist() == [2**63 - 1, 2**63 - 1]
