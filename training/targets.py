"""Label values a training loss can take, checked batch by batch: :class:`TargetCheck`.

``cross_entropy`` needs class codes ``0 .. n_classes - 1`` of the model's outputs: torch raises a
bare ``IndexError`` for a code outside them on the CPU (a device-side assert on CUDA) and
silently skips a row whose code is ``-100`` (its ``ignore_index``), so that row would train
with no loss while it is counted as trained; a float target (a batch of :func:`~training.trainer.fit`
not read through :func:`~training.trainer.train`, which refuses a float label column for
``cross_entropy``) must be a whole number, as the loss truncates 1.7 to class 1 and NaN to an
arbitrary code. ``bce`` needs targets in ``[0, 1]``: torch takes
any value and returns a loss without meaning (negative for a target above 1 or below 0).
:class:`TargetCheck` refuses both with an :class:`~modyn_store.core.errors.InvalidArgumentError`
naming ``config.label``; ``mse`` takes any value.

Example
-------
>>> import torch
>>> check = TargetCheck("cross_entropy", "label")
>>> check(torch.zeros(2, 3), torch.tensor([0, 2]), torch.tensor([10, 11])).tolist()
[0, 2]
>>> try:
...     check(torch.zeros(2, 3), torch.tensor([0, -100]), torch.tensor([10, 11]))
... except Exception as e:
...     print(type(e).__name__)
InvalidArgumentError
"""

from __future__ import annotations

import torch

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["TargetCheck"]


class TargetCheck:
    """Checks the targets of every batch of a training with loss ``kind`` (see the module
    docstring) against the model's ``logits``.

    Targets on the CPU are checked at once (one comparison per batch). Targets on a device are
    not read back per step (that would wait for every step's kernels): the invalid ones are
    counted on the device and replaced by a valid value (so that no device-side assert fires),
    and :meth:`finish` raises at the end of the epoch, before anything of the training is
    recorded. With ``defer``, targets on the CPU are counted the same way: a rank of a DDP
    group must not raise alone (the others would wait for it forever), so the ranks sum their
    :meth:`pending` counts and every rank raises.
    """

    def __init__(self, kind: str, label: str, *, defer: bool = False) -> None:
        self.kind = kind
        self.label = label
        self.defer = defer
        self._count: torch.Tensor | None = None
        self._expected = ""

    def _invalid(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
        """A mask of the invalid targets, or None when every value is valid for the loss."""
        if self.kind == "cross_entropy" and logits.ndim >= 2:
            n = int(logits.shape[1])
            self._expected = f"integer class codes 0 .. {n - 1} (the model outputs {n} classes)"
            bad = (target < 0) | (target >= n)
            if target.is_floating_point():  # the loss takes .long(): 1.7 would train as class 1
                bad |= target != torch.trunc(target)  # NaN too (NaN != NaN)
            return bad
        if self.kind == "bce":
            self._expected = "targets in [0, 1] (binary cross-entropy)"
            return ~((target >= 0) & (target <= 1))  # NaN is invalid too
        return None

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, keys: torch.Tensor | None = None, *,
                 counted: bool = True) -> torch.Tensor:
        """``target``, checked (see the class docstring); ``keys``: the batch's keys, named in
        the error when given for the same rows; ``counted=False``: a batch served again (a DDP
        rank's zero-weight stand-in), whose invalid targets are replaced but not counted twice."""
        mask = self._invalid(logits, target)
        if mask is None:
            return target
        if target.device.type == "cpu" and not self.defer:
            if bool(mask.any()):
                values = torch.unique(target[mask])[:5].tolist()
                rows = ""
                if keys is not None and keys.shape[0] == target.shape[0]:
                    per_row = mask.reshape(target.shape[0], -1).any(dim=1)
                    rows = f" in rows of keys {keys.cpu()[per_row][:5].tolist()}"
                raise InvalidArgumentError("config.label", f"{self.label!r} values {values}{rows}", self._expected)
            return target
        bad = mask.sum() * int(counted)
        self._count = bad if self._count is None else self._count + bad
        return torch.where(mask, torch.zeros_like(target), target)

    def pending(self) -> int:
        """Invalid targets counted (not raised) since the last call (waits for the device)."""
        count, self._count = self._count, None
        return 0 if count is None else int(count.item())

    def finish(self, epoch: int, count: int | None = None) -> None:
        """Raise if targets counted in the epoch that just ended were invalid (``count``: the
        number of them, e.g. summed over ranks; default :meth:`pending`)."""
        count = self.pending() if count is None else count
        if count:
            raise InvalidArgumentError("config.label", f"{self.label!r}: {count} invalid values in epoch {epoch}",
                                       self._expected)
