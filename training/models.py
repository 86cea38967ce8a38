"""Small torch models for the benchmark tasks, built from plain parameters (YAML friendly).

=================  =========================================  ==============================
name               model                                      ``forward`` inputs
=================  =========================================  ==============================
``logreg``         :class:`LogisticRegression`                ``features`` [B, in_features]
``mlp``            :class:`MLP`                               ``features`` [B, in_features]
``dlrm``           :class:`DLRM`                              ``dense`` [B, n_dense] float,
                                                              ``sparse`` [B, n_sparse] int64
``text_bag``       :class:`TextBag`                           ``tokens`` [T] int64,
                                                              ``offsets`` [B] int64
=================  =========================================  ==============================

Every model returns logits of shape ``[B, n_classes]`` (binary tasks use ``n_classes=2``) and
names its inputs in the class attribute ``inputs``. ``logreg`` and ``mlp`` standardize their
``features`` first (:class:`InputScale`, identity until a training fits it to its train set). With the tables of
:mod:`modyn_store.app.datasets`: ``logreg`` / ``mlp`` take the ``features`` column; ``dlrm`` takes
``i1 .. i13`` as ``dense`` and ``c1 .. c26`` as ``sparse`` (click logs) or e.g. ``user_id``,
``movie_id`` as ``sparse`` (MovieLens); ``text_bag`` takes ``hash_tokens(text)``. :func:`hash_tokens` turns strings into the
``tokens`` / ``offsets`` pair of :class:`TextBag`.

Example
-------
>>> import torch
>>> model = build_model("mlp", in_features=4, n_classes=3, hidden=[8])
>>> model(torch.zeros(2, 4)).shape
torch.Size([2, 3])
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from modyn_store.core.errors import InvalidArgumentError, InvalidNameError

__all__ = ["DLRM", "MLP", "MODELS", "InputScale", "LogisticRegression", "TextBag", "build_model", "hash_tokens", "load_weights"]

_TOKEN = re.compile(r"[a-z0-9]+")


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(name, value, "an integer >= 1")
    return value


def _sizes(name: str, value: Sequence[int]) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidArgumentError(name, value, "a list of integers >= 1")
    return tuple(_positive(f"{name}[{i}]", v) for i, v in enumerate(value))


def _stack(sizes: Sequence[int], dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


def hash_tokens(
    texts: Sequence[str], *, n_buckets: int = 2**18, ngrams: int = 1, max_tokens: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize and hash ``texts`` into the ``(tokens, offsets)`` input of :class:`TextBag`.

    Lower-cases, splits into runs of ``[a-z0-9]``, adds word n-grams up to ``ngrams`` (joined by a
    space), and maps each token to ``blake2b(token) mod n_buckets`` (stable across processes and
    platforms). ``offsets[i]`` is where text ``i`` starts in ``tokens``; an empty text gives an
    empty bag.

    Examples
    --------
    >>> tokens, offsets = hash_tokens(["Oil prices rose", "", "oil"], n_buckets=1000)
    >>> offsets.tolist(), len(tokens), bool(tokens[0] == tokens[3])
    ([0, 3, 3], 4, True)
    """
    _positive("n_buckets", n_buckets)
    _positive("ngrams", ngrams)
    if max_tokens is not None:
        _positive("max_tokens", max_tokens)
    ids: list[int] = []
    offsets = np.empty(len(texts), dtype=np.int64)
    cache: dict[str, int] = {}
    for i, text in enumerate(texts):
        offsets[i] = len(ids)
        words = _TOKEN.findall(text.lower())
        grams = list(words)
        for n in range(2, ngrams + 1):
            grams += [" ".join(words[j : j + n]) for j in range(len(words) - n + 1)]
        if max_tokens is not None:
            grams = grams[:max_tokens]
        for g in grams:
            h = cache.get(g)
            if h is None:
                h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") % n_buckets
                cache[g] = h
            ids.append(h)
    return np.asarray(ids, dtype=np.int64), offsets


class InputScale(nn.Module):
    """``(x - shift) * scale`` per feature: the standardization a training fits to its train set
    (``training.train`` with ``TrainConfig.standardize``), kept in the model's checkpoint so
    that evaluation, scoring and fine-tuning see the inputs as the training did. It starts as
    the identity; a checkpoint written before models had it loads as the identity too.

    >>> s = InputScale(2)
    >>> s.fit_(torch.tensor([10.0, 0.0]), torch.tensor([2.0, 0.0]))  # a constant feature keeps scale 1
    >>> s(torch.tensor([[12.0, 5.0]])).tolist()
    [[1.0, 5.0]]
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))

    def fit_(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Scale to ``mean`` and ``std`` (features whose std is 0 or not finite, or whose mean
        is not finite, are left as they are)."""
        mean, std = mean.to(self.shift), std.to(self.scale)
        ok = torch.isfinite(mean) & torch.isfinite(std) & (std > 0)
        self.shift.copy_(torch.where(ok, mean, torch.zeros_like(mean)))
        self.scale.copy_(torch.where(ok, 1.0 / torch.where(ok, std, torch.ones_like(std)), torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) * self.scale

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        # checkpoints from before models standardized their inputs: the identity they trained with
        for name, fill in (("shift", self.shift.new_zeros), ("scale", self.shift.new_ones)):
            if prefix + name not in state_dict:
                state_dict[prefix + name] = fill(self.shift.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class LogisticRegression(nn.Module):
    """Multinomial logistic regression: one linear layer (after :class:`InputScale`).

    Parameters
    ----------
    in_features:
        Length of the feature vector.
    n_classes:
        Number of output logits.

    Examples
    --------
    >>> LogisticRegression(3, 2)(torch.ones(5, 3)).shape
    torch.Size([5, 2])
    """

    inputs = ("features",)

    def __init__(self, in_features: int, n_classes: int = 2) -> None:
        super().__init__()
        self.in_features = _positive("in_features", in_features)
        self.n_classes = _positive("n_classes", n_classes)
        self.input_scale = InputScale(in_features)
        self.linear = nn.Linear(in_features, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.input_scale(features))


class MLP(nn.Module):
    """A ReLU multi-layer perceptron.

    Parameters
    ----------
    in_features, n_classes:
        Input width and number of output logits.
    hidden:
        Widths of the hidden layers (empty: logistic regression).
    dropout:
        Dropout after each hidden layer, in ``[0, 1)``.

    Examples
    --------
    >>> MLP(3, 2, hidden=[16, 8])(torch.ones(5, 3)).shape
    torch.Size([5, 2])
    """

    inputs = ("features",)

    def __init__(self, in_features: int, n_classes: int = 2, hidden: Sequence[int] = (64,), dropout: float = 0.0) -> None:
        super().__init__()
        self.in_features = _positive("in_features", in_features)
        self.n_classes = _positive("n_classes", n_classes)
        self.hidden = _sizes("hidden", hidden)
        if not 0.0 <= dropout < 1.0:
            raise InvalidArgumentError("dropout", dropout, "a probability in [0, 1)")
        self.dropout = dropout
        sizes = (in_features, *self.hidden)
        self.input_scale = InputScale(in_features)
        self.body = nn.Sequential(*_stack(sizes, dropout))
        self.head = nn.Linear(sizes[-1], n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.input_scale(features)))


class DLRM(nn.Module):
    """A DLRM-style click model: embedding bags for categoricals, bottom and top MLPs.

    The dense features go through the bottom MLP to a vector of ``embedding_dim``; each
    categorical id (taken modulo its table's size, so hashed ids of any range work) is looked
    up in its own ``EmbeddingBag``; the pairwise dot products of these ``1 + n_sparse`` vectors
    and the bottom output feed the top MLP.

    Parameters
    ----------
    n_dense:
        Number of dense (numeric) features.
    cardinalities:
        Size of each categorical feature's embedding table (one entry per categorical).
    embedding_dim:
        Width of every embedding and of the bottom MLP's output.
    bottom, top:
        Hidden widths of the bottom and top MLPs.
    n_classes:
        Number of output logits.
    log_dense:
        Feed ``log1p(max(dense, 0))`` to the bottom MLP, the usual transform of raw click-log
        counts (``i1 .. i13`` of Criteo and of the synthetic click log); ``False`` feeds
        ``dense`` as it is.

    Examples
    --------
    >>> m = DLRM(n_dense=13, cardinalities=[100] * 26, embedding_dim=8)
    >>> m(torch.zeros(4, 13), torch.randint(0, 10**9, (4, 26))).shape
    torch.Size([4, 2])
    """

    inputs = ("dense", "sparse")

    def __init__(
        self,
        n_dense: int,
        cardinalities: Sequence[int],
        embedding_dim: int = 16,
        bottom: Sequence[int] = (64,),
        top: Sequence[int] = (64,),
        n_classes: int = 2,
        log_dense: bool = True,
    ) -> None:
        super().__init__()
        self.n_dense = _positive("n_dense", n_dense)
        self.log_dense = bool(log_dense)
        self.cardinalities = _sizes("cardinalities", cardinalities)
        self.embedding_dim = _positive("embedding_dim", embedding_dim)
        self.bottom = _sizes("bottom", bottom)
        self.top = _sizes("top", top)
        self.n_classes = _positive("n_classes", n_classes)
        self.bottom_mlp = nn.Sequential(*_stack((n_dense, *self.bottom, embedding_dim), 0.0))
        self.embeddings = nn.ModuleList(nn.EmbeddingBag(c, embedding_dim, mode="sum") for c in self.cardinalities)
        n_vec = 1 + len(self.cardinalities)
        n_inter = n_vec * (n_vec - 1) // 2
        top_sizes = (embedding_dim + n_inter, *self.top)
        self.top_mlp = nn.Sequential(*_stack(top_sizes, 0.0), nn.Linear(top_sizes[-1], n_classes))
        rows, cols = torch.triu_indices(n_vec, n_vec, offset=1)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)
        self.register_buffer("_sizes", torch.tensor(self.cardinalities, dtype=torch.int64), persistent=False)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        dense = dense.float()
        if self.log_dense:
            dense = torch.log1p(dense.clamp_min(0.0))
        x = self.bottom_mlp(dense)
        sizes: torch.Tensor = self._sizes  # type: ignore[assignment]  # a registered buffer
        ids = torch.remainder(sparse, sizes)
        vecs = [x] + [emb(ids[:, i : i + 1]) for i, emb in enumerate(self.embeddings)]
        stacked = torch.stack(vecs, dim=1)  # [B, n_vec, d]
        rows: torch.Tensor = self._rows  # type: ignore[assignment]
        cols: torch.Tensor = self._cols  # type: ignore[assignment]
        inter = torch.bmm(stacked, stacked.transpose(1, 2))[:, rows, cols]
        return self.top_mlp(torch.cat([x, inter], dim=1))


class TextBag(nn.Module):
    """A bag-of-hashed-tokens text classifier: ``EmbeddingBag`` (mean) then an MLP head.

    Parameters
    ----------
    n_buckets:
        Size of the hashed vocabulary (use the same value in :func:`hash_tokens`).
    n_classes:
        Number of output logits.
    embedding_dim:
        Width of the token embeddings.
    hidden:
        Hidden widths of the head (empty: linear head).

    Examples
    --------
    >>> tokens, offsets = hash_tokens(["crude oil", "dividend"], n_buckets=512)
    >>> m = TextBag(n_buckets=512, n_classes=3, embedding_dim=8)
    >>> m(torch.from_numpy(tokens), torch.from_numpy(offsets)).shape
    torch.Size([2, 3])
    """

    inputs = ("tokens", "offsets")

    def __init__(self, n_buckets: int = 2**18, n_classes: int = 2, embedding_dim: int = 64, hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.n_buckets = _positive("n_buckets", n_buckets)
        self.n_classes = _positive("n_classes", n_classes)
        self.embedding_dim = _positive("embedding_dim", embedding_dim)
        self.hidden = _sizes("hidden", hidden)
        self.embedding = nn.EmbeddingBag(n_buckets, embedding_dim, mode="mean")
        sizes = (embedding_dim, *self.hidden)
        self.head = nn.Sequential(*_stack(sizes, 0.0), nn.Linear(sizes[-1], n_classes))

    def forward(self, tokens: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(tokens, offsets))


MODELS: dict[str, Callable[..., nn.Module]] = {
    "dlrm": DLRM,
    "logreg": LogisticRegression,
    "mlp": MLP,
    "text_bag": TextBag,
}


def load_weights(net: nn.Module, state: dict[str, Any], *, name: str, training_id: str) -> nn.Module:
    """Load the checkpoint ``state`` of ``training_id`` into ``net``; a checkpoint of another
    architecture raises :class:`InvalidArgumentError` naming ``name`` and the training."""
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise InvalidArgumentError(
            name, training_id, f"a training whose checkpoint fits {type(net).__name__}: {exc}") from exc
    return net


def build_model(name: str, **params: Any) -> nn.Module:
    """Build the registered model ``name`` from keyword parameters.

    Raises
    ------
    InvalidNameError
        ``name`` is not in :data:`MODELS`.
    InvalidArgumentError
        A parameter is unknown, a required one is missing, or a value is out of range.

    Examples
    --------
    >>> build_model("logreg", in_features=8).n_classes
    2
    >>> build_model("logreg", in_feature=8)
    Traceback (most recent call last):
    ...
    modyn_store.core.errors.InvalidArgumentError: invalid in_feature=8: expected a parameter of 'logreg': one of in_features, n_classes
    """
    factory = MODELS.get(name)
    if factory is None:
        raise InvalidNameError("name", name, "one of " + ", ".join(repr(n) for n in sorted(MODELS)))
    signature = inspect.signature(factory)
    known = [p for p in signature.parameters if p != "self"]
    for key, value in params.items():
        if key not in known:
            raise InvalidArgumentError(key, value, f"a parameter of {name!r}: one of {', '.join(known)}")
    for key, p in signature.parameters.items():
        if p.default is inspect.Parameter.empty and key not in params:
            raise InvalidArgumentError(key, None, f"a value: {name!r} requires {key!r}")
    return factory(**params)
