"""``DataAmount``: fire after every ``every`` inserted samples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modyn_store.core._validate import check_int
from modyn_store.core.errors import InvalidArgumentError
from policies.base import Firing, ModelLike, RowSource, Trigger, TriggerInput, register
from policies._state_shape import PARAMS, is_count, own_state

__all__ = ["DataAmount"]


@register("data_amount")
class DataAmount(Trigger):
    """Fire after every ``every`` inserted samples, counted over all deltas.

    The n-th firing's cutoff includes exactly the first ``n * every`` inserted samples, however
    the samples are split into versions (deleted samples still count: they were seen).

    Parameters
    ----------
    every:
        Samples per firing, an integer >= 1.

    Example
    -------
    >>> import numpy as np
    >>> from policies import DataAmount, TriggerInput
    >>> t = DataAmount(every=3)
    >>> out = []
    >>> for v in (1, 2, 3):  # three versions of two samples each
    ...     keys = np.array([2 * v, 2 * v + 1])
    ...     out += t.fire(TriggerInput(version=v, keys=keys, ts=keys))
    >>> [(f.version, f.position, f.seen) for f in out]
    [(2, 1, 3), (3, 2, 6)]
    """

    reads_labels = False

    def __init__(self, every: int = 1000) -> None:
        self.every = check_int("every", every, 1)
        self._seen = 0

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"every": 1}, {"every": 7}]

    def state(self) -> dict[str, Any]:
        """``{"params", "seen"}``: the parameters (``every``) and the samples fed so far, all the
        trigger keeps (see :meth:`Trigger.state`)."""
        return {PARAMS: self._state_params(), "seen": int(self._seen)}

    def load_state(self, state: Mapping[str, Any], rows: RowSource | None = None) -> None:
        """Take :meth:`state`'s data; one saved with another ``every`` is refused, naming
        ``state.params.every``. A ``{"seen"}`` state without parameters is taken: the samples
        seen mean the same for any ``every`` (the firings are at its multiples)."""
        state = own_state(state, self._state_params(), "a data_amount trigger's state", bare_ok=True)
        if not isinstance(state, Mapping) or set(state) != {"seen"} or not is_count(state["seen"]):
            raise InvalidArgumentError("state", state, "a data_amount trigger's state: {'params': its "
                                                       "parameters, 'seen': int >= 0}")
        self._seen = int(state["seen"])

    def _fire(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        n = len(delta)
        every = int(self.every)
        first = every - (self._seen % every)
        ends = np.arange(first, n + 1, every)
        out = [
            delta.firing(int(e), f"{every} samples since the last firing",
                         trigger=self.name, seen=self._seen + int(e), statistic=float(every))
            for e in ends
        ]
        self._seen += n
        return out
