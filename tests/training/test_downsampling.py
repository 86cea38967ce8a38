"""Selection inside training: batch-then-sample downsampling and rescoring every few epochs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.trainer import TrainConfig, train

CFG = TrainConfig(model="mlp", model_params={"in_features": 8, "n_classes": 3, "hidden": [6]},
                  inputs={"features": "x"}, epochs=2, batch_size=50, optimizer="sgd", lr=0.1, seed=1,
                  shuffle=False)


class Spy:
    """A top-``ratio`` loss selector that records what it saw and chose."""

    needs_labels = True
    needs_hidden = False

    def __init__(self, ratio: float, weight: float = 1.0) -> None:
        self.ratio, self.weight = ratio, weight
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def score_batch(self, logits, labels=None, *, hidden=None, keys=None):  # type: ignore[no-untyped-def]
        z = logits - logits.max(axis=1, keepdims=True)
        loss = np.log(np.exp(z).sum(axis=1)) - z[np.arange(z.shape[0]), labels]
        self.calls.append((keys, loss, np.empty(0)))
        return loss

    def choose_in_batch(self, scores, *, seed):  # type: ignore[no-untyped-def]
        k = int(round(self.ratio * scores.size))
        pos = np.sort(np.argsort(-scores, kind="stable")[:k])
        keys, loss, _ = self.calls[-1]
        self.calls[-1] = (keys, loss, pos)
        return pos, np.full(k, self.weight)


def _keys_trained_on(store, ts, cfg, **kw):  # type: ignore[no-untyped-def]
    seen: list[np.ndarray] = []

    def prepare(batch):  # type: ignore[no-untyped-def]
        seen.append(batch["key"].numpy().copy())
        return {"features": batch["x"]}

    return train(store, ts, cfg, record=False, prepare=prepare, **kw), seen


def test_batch_then_sample_trains_only_on_the_chosen_highest_loss_rows(store) -> None:
    ts = TrainSet.uniform(store.as_of(None).keys()[:400], version=store.version)
    spy = Spy(0.2)
    res, _ = _keys_trained_on(store, ts, CFG, downsample=spy)
    assert res.cost.samples == 2 * 8 * 10  # 2 epochs x 8 batches x round(0.2 * 50)
    for keys, loss, pos in spy.calls:
        assert pos.size == 10 and loss[pos].min() >= np.delete(loss, pos).max()
    full = train(store, ts, CFG, record=False)
    assert full.cost.samples == 800
    assert any(not torch.equal(a, b) for a, b in zip(res.model.state_dict().values(),
                                                     full.model.state_dict().values()))


def test_importance_weights_multiply_the_loss(store) -> None:
    """Training a batch on chosen rows with weight 2 equals training those rows with stored weight 2."""
    keys = store.as_of(None).keys()[:50]
    # (raw inputs: standardized, the two trainings would scale to different train sets)
    cfg = TrainConfig(**{**CFG.to_json(), "epochs": 1, "standardize": False})
    spy = Spy(0.3, weight=2.0)
    a = train(store, TrainSet.uniform(keys, version=store.version), cfg, record=False, downsample=spy)
    chosen = keys[spy.calls[0][2]]
    b = train(store, TrainSet(keys=chosen, weights=np.full(chosen.size, 2.0), version=store.version), cfg,
              record=False)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        torch.testing.assert_close(x, y)


def test_a_score_strategy_is_a_batch_selector(store) -> None:
    import policies

    ts = TrainSet.uniform(store.as_of(None).keys()[:200], version=store.version)
    for name in ("loss", "gradnorm", "margin"):
        res = train(store, ts, CFG, record=False,
                    downsample=policies.get("selection", name)(ratio=0.5, mode="batch_then_sample"))
        assert res.cost.samples == 2 * 4 * 25, name


def test_reselect_every_period_serves_the_new_sets_and_records_them(store) -> None:
    all_keys = store.as_of(None).keys()
    first = TrainSet.uniform(all_keys[:100], version=store.version)
    calls: list[int] = []

    def reselect(model: torch.nn.Module) -> TrainSet:
        calls.append(len(calls))
        lo = 100 * (len(calls))
        return TrainSet.uniform(all_keys[lo:lo + 100], version=store.version)

    cfg = TrainConfig(**{**CFG.to_json(), "epochs": 5})
    res, seen = _keys_trained_on(store, first, cfg, reselect=reselect, reselect_every=2)
    assert calls == [0, 1]  # before epochs 2 and 4
    per_epoch = [np.sort(np.concatenate(seen[i * 2:(i + 1) * 2])) for i in range(5)]
    expect = [all_keys[:100], all_keys[:100], all_keys[100:200], all_keys[100:200], all_keys[200:300]]
    for got, want in zip(per_epoch, expect):
        np.testing.assert_array_equal(got, want)
    rec_set = res.train_set
    assert rec_set.size == 300 and len(rec_set.per_epoch) == 5
    for e, want in enumerate(expect):
        np.testing.assert_array_equal(np.sort(rec_set.keys[rec_set.for_epoch(e)]), want)
    recorded = train(store, first, cfg, reselect=reselect, reselect_every=2, training_id="re")
    stored = Catalog(store).train_set("re")
    assert stored == recorded.train_set and recorded.record.metrics["reselections"] == 2


def test_an_empty_reselected_set_trains_on_nothing_as_recorded(store) -> None:
    """A reselection may choose no key: the next epochs then train on nothing, as the recorded
    plans say, not on the set of the epochs before."""
    first = TrainSet.uniform(store.as_of(None).keys()[:100], version=store.version)
    empty = TrainSet.uniform(np.empty(0, np.int64), version=store.version)
    cfg = TrainConfig(**{**CFG.to_json(), "epochs": 4})
    res, seen = _keys_trained_on(store, first, cfg, reselect=lambda model: empty, reselect_every=2)
    assert [p.size for p in res.train_set.per_epoch] == [100, 100, 0, 0]
    assert sum(k.size for k in seen) == 200 and res.cost.samples == 200
    assert res.epoch_losses[2:] == (0.0, 0.0)


def test_bad_hooks_are_rejected(store) -> None:
    ts = TrainSet.uniform(store.as_of(None).keys()[:50], version=store.version)
    with pytest.raises(InvalidArgumentError, match="reselect"):
        train(store, ts, CFG, record=False, reselect_every=1)
    with pytest.raises(InvalidArgumentError, match="downsample"):
        train(store, ts, CFG, record=False, downsample=object())


def test_a_reselected_set_of_another_version_is_refused(store) -> None:
    """The recorded train set has one version for all its epochs' plans: a training that
    reselected from a later version (after a key of its first set was deleted) was recorded at
    that later version, and its reproduction then refused the deleted key as if it were gone."""
    from modyn_store.core.errors import UnknownKeyError

    first_version = store.version
    keys = store.as_of(None).keys()
    first = TrainSet.uniform(keys[:100], version=first_version)
    store.delete([int(keys[0])])
    later = TrainSet.uniform(keys[1:101], version=store.version)
    with pytest.raises(InvalidArgumentError, match="reselect"):
        train(store, first, CFG, reselect=lambda m: later, reselect_every=1, training_id="mixed")
    with pytest.raises(UnknownKeyError):
        Catalog(store).get("mixed")


def test_a_reselected_training_of_sets_with_epoch_plans_is_refused(store) -> None:
    """The recorded union holds one plan per epoch: sets with plans of their own (each epoch a
    subset) were recorded as if every epoch had trained on all of a set's keys."""
    keys = store.as_of(None).keys()
    planned = TrainSet(keys=keys[:100], weights=np.ones(100), version=store.version,
                       per_epoch=(np.arange(0, 100, 4),))
    plain = TrainSet.uniform(keys[100:200], version=store.version)
    with pytest.raises(InvalidArgumentError, match="per-epoch plans"):
        train(store, planned, CFG, reselect=lambda m: plain, reselect_every=1, training_id="planned-first")
    with pytest.raises(InvalidArgumentError, match="per-epoch plans"):
        train(store, plain, CFG, reselect=lambda m: planned, reselect_every=1, training_id="planned-later")
    # a set with plans and no reselection within its epochs trains as before
    train(store, planned, CFG, reselect=lambda m: plain, reselect_every=CFG.epochs, record=False)


def test_gradnorm_downsampling_refuses_a_bias_free_head(store) -> None:
    """Without a bias the formula's ``1 +`` is no gradient: refused before training, not a skewed pick."""
    import policies

    class NoBias(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(8, 3, bias=False)

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return self.head(features)

    from training.downsampling import BatchThenSample

    chooser = BatchThenSample(policies.get("selection", "gradnorm")(ratio=0.5, mode="batch_then_sample"))
    batch = {"key": torch.arange(4), "x": torch.randn(4, 8), "label": torch.tensor([0, 1, 2, 0])}
    with pytest.raises(InvalidArgumentError, match="without a bias") as err:
        chooser.choose(NoBias(), {"features": batch["x"]}, batch, "label", epoch=0, step=0)
    assert err.value.name == "embedding_layer" and chooser.scored == 0


def test_union_of_epochs_keeps_each_epochs_weights_where_they_differ() -> None:
    from training.downsampling import union_of_epochs

    a = TrainSet(keys=np.array([5, 1]), weights=np.array([1.0, 2.0]), version=3)
    b = TrainSet(keys=np.array([1, 9]), weights=np.array([2.0, 7.0]), version=3)
    alike = union_of_epochs([a, b, b], 3)
    assert alike.per_epoch_weights is None and alike.keys.tolist() == [1, 5, 9]
    assert [alike.epoch_set(e).weights.tolist() for e in range(3)] == [[1.0, 2.0], [2.0, 7.0], [2.0, 7.0]]
    c = TrainSet(keys=np.array([9, 5]), weights=np.array([0.5, 4.0]), version=3)
    union = union_of_epochs([a, b, c], 3)
    assert union.per_epoch_weights is not None
    for e, s in enumerate((a, b, c)):
        got = union.epoch_set(e)
        assert got.keys.tolist() == s.keys.tolist() and got.weights.tolist() == s.weights.tolist()


def test_reselected_epochs_are_visited_in_the_recorded_seeded_order(store) -> None:
    """The sets a reselection serves are shuffled with the training's seed: every epoch visits
    its keys in the order ``visit_order`` gives from the record (the order reproduce() replays)."""
    from training.reproduction import visit_order

    all_keys = store.as_of(None).keys()
    first = TrainSet.uniform(all_keys[:100], version=store.version)
    sets = iter([all_keys[100:200], all_keys[150:250]])

    def reselect(model: torch.nn.Module) -> TrainSet:
        return TrainSet.uniform(next(sets), version=store.version)

    seen: list[np.ndarray] = []

    def prepare(batch: dict) -> dict:
        seen.append(batch["key"].numpy().copy())
        return {"features": batch["x"]}

    cfg = TrainConfig(**{**CFG.to_json(), "epochs": 3, "shuffle": True, "seed": 7})
    train(store, first, cfg, reselect=reselect, reselect_every=1, training_id="order", prepare=prepare)
    want = [visit_order(store, "order", e) for e in range(3)]
    np.testing.assert_array_equal(np.concatenate(seen), np.concatenate(want))
    assert not np.array_equal(want[1], np.sort(want[1]))  # shuffled
