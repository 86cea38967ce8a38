"""A pipeline's torch model as the policies see it (``policies.ModelLike``): logits and embeddings.

Example
-------
>>> import numpy as np, torch
>>> from modyn_store.app.pipeline.model_view import TorchModelView
>>> class Net(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.hidden, self.out = torch.nn.Linear(2, 3), torch.nn.Linear(3, 2)
...     def forward(self, x):
...         return self.out(self.hidden(x))
>>> view = TorchModelView(Net(), {"x": "features"})
>>> feats = {"features": np.zeros((4, 2), np.float32)}
>>> view.logits(feats).shape, view.embed(feats).shape
((4, 2), (4, 3))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["TorchModelView", "column_array"]


class TorchModelView:
    """``policies.ModelLike`` over a torch module: logits and penultimate-layer embeddings."""

    def __init__(self, module: Any, inputs: Mapping[str, str]) -> None:
        self.module = module
        self.inputs = dict(inputs)

    def _forward(self, features: Mapping[str, np.ndarray], embed: bool) -> np.ndarray:
        import torch

        args = {arg: torch.from_numpy(np.array(features[col], copy=True)) for arg, col in self.inputs.items()}
        args = {k: v.float() if v.dtype == torch.float64 else v for k, v in args.items()}
        captured: list[Any] = []
        hook = None
        if embed:
            last = [m for m in self.module.modules() if isinstance(m, torch.nn.Linear)][-1]
            hook = last.register_forward_hook(lambda _m, inp, _o: captured.append(inp[0]))
        try:
            self.module.eval()
            with torch.no_grad():
                out = self.module(**args)
        finally:
            if hook is not None:
                hook.remove()
        res = captured[0] if embed else out
        return res.float().cpu().numpy()

    def logits(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._forward(features, embed=False)

    def embed(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._forward(features, embed=True)


def column_array(col: pa.ChunkedArray) -> np.ndarray:
    """A column as a NumPy array; a fixed-size list column as a ``[rows, size]`` matrix."""
    t = col.type
    if pa.types.is_fixed_size_list(t):
        flat = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(col), t.list_size)
    return col.to_numpy()
