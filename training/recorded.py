"""The model of a recorded training, built again from the catalog.

:func:`load_model` builds the registered model that a training recorded
(``TrainConfig.model`` and ``model_params``, from :data:`training.models.MODELS` only) and
loads its checkpoint into it (verified by its sha256 and read with
``torch.load(weights_only=True)``: nothing in the file is executed). Evaluation by training
id, the pipeline's irreducible-loss model after a restart and the reproduction of a RHO-LOSS
training's batch selection load their models this way.

Example
-------
>>> import numpy as np, pyarrow as pa, torch
>>> from modyn_store import Store, TrainSet
>>> from training.trainer import TrainConfig, train
>>> from training.recorded import load_model
>>> store = Store.open("memory://recorded-doc", create=True)
>>> x = np.random.default_rng(2).standard_normal((40, 2)).astype(np.float32)
>>> _ = store.append(pa.table({"ts": np.arange(40), "label": (x[:, 0] > 0).astype(np.int64),
...                            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
>>> cfg = TrainConfig(model="logreg", model_params={"in_features": 2, "n_classes": 2}, batch_size=8, seed=3)
>>> res = train(store, TrainSet.uniform(np.arange(40), version=1), cfg, training_id="t1")
>>> model = load_model(store, "t1")
>>> type(model).__name__, all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
...                                                              res.model.state_dict().values()))
('LogisticRegression', True)
>>> load_model(store, "t9")
Traceback (most recent call last):
...
modyn_store.core.errors.UnknownKeyError: no training 't9' in the catalog
"""

from __future__ import annotations

from typing import Any

from torch import nn

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainings import Catalog
from training.models import build_model, load_weights
from training.train_config import TrainConfig

__all__ = ["load_model"]


def load_model(store: Any, training_id: str, *, name: str = "training_id") -> nn.Module:
    """The model of the recorded training ``training_id`` of ``store``, with its checkpoint's weights.

    The module is built from the recorded configuration's model name and parameters (a name of
    :data:`training.models.MODELS`), and the checkpoint is verified by its sha256 and read with
    ``torch.load(weights_only=True)`` before it is loaded. The module is returned on the CPU,
    in training mode (as :func:`training.models.build_model` makes it).

    Parameters
    ----------
    store:
        A :class:`modyn_store.Store` whose catalog records the training.
    training_id:
        The recorded training.
    name:
        The argument that the errors below name (the caller's own, such as ``"models"``).

    Raises
    ------
    UnknownKeyError
        No training ``training_id`` in the catalog.
    InvalidArgumentError
        The training recorded no model name (it trained a module passed in code), or its
        checkpoint does not fit the recorded architecture; both name ``name`` and the training.
    InvalidNameError
        The recorded model name is not a registered model (naming the registered ones).
    DataUnavailableError, CorruptionError
        The training recorded no checkpoint, or the checkpoint is missing or damaged.
    """
    catalog = Catalog(store)
    rec = catalog.get(training_id)
    cfg = TrainConfig.from_json(rec.config) if rec.config else None
    if cfg is None or not cfg.model:
        raise InvalidArgumentError(name, training_id, "a training built from a registered model name "
                                                      "(a module passed in code records none)")
    model = build_model(cfg.model, **cfg.model_params)
    return load_weights(model, catalog.load_checkpoint(training_id), name=name, training_id=training_id)
