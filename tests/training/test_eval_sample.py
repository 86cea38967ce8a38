"""Sampled evaluation: equal to the full evaluation when the sample covers the slice, seeded,
stratified, and with confidence intervals that cover the full value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from training.eval_sample import EvalSample, slice_keys
from training.evaluation import evaluate, time_slices


def _store(tmp_path: Path, n: int = 6000, seed: int = 0) -> Store:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    label = ((x[:, 0] + 0.8 * rng.standard_normal(n)) > 0.6).astype(np.int64)  # imbalanced, noisy
    s = Store.open(str(tmp_path / "s"), create=True)
    half = n // 2
    for lo, hi in ((0, half), (half, n)):
        s.append(pa.table({"ts": np.arange(lo, hi), "label": label[lo:hi],
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x[lo:hi].ravel()), 4)}))
    s.delete(keys=np.arange(100, 160))  # deleted rows are never evaluated
    return s


def _models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"a": torch.nn.Linear(4, 2), "b": torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                                                  torch.nn.Linear(8, 2))}


METRICS = ("accuracy", "f1", "roc_auc", "loss")


@pytest.mark.parametrize("sample", [EvalSample(size=10**6), EvalSample(fraction=1.0),
                                    EvalSample(size=10**6, stratify=True, seed=5)])
def test_sample_covering_the_slice_equals_the_full_evaluation(tmp_path: Path, sample: EvalSample) -> None:
    store = _store(tmp_path)
    slices = time_slices(store, n=3)
    full = evaluate(store, _models(), slices, inputs={"input": "x"}, metrics=METRICS, record=False)
    got = evaluate(store, _models(), slices, inputs={"input": "x"}, metrics=METRICS, record=False, sample=sample)
    np.testing.assert_array_equal(got.values, full.values)
    assert got.counts == full.counts == got.population
    assert np.all(got.margins == 0)


def test_sample_size_seed_and_strata(tmp_path: Path) -> None:
    store = _store(tmp_path)
    snap, slices = store.as_of(), time_slices(store, n=3)
    parts = slice_keys(snap, slices, EvalSample(size=500, seed=1))
    again = slice_keys(snap, slices, EvalSample(size=500, seed=1))
    other = slice_keys(snap, slices, EvalSample(size=500, seed=2))
    live = snap.keys()
    for p, q, r in zip(parts, again, other):
        assert p.keys.size == 500 and np.unique(p.keys).size == 500
        assert np.isin(p.keys, live).all()
        np.testing.assert_array_equal(p.keys, q.keys)
        assert not np.array_equal(p.keys, r.keys)
    assert sum(p.population for p in parts) == live.size
    # the choice does not depend on how the snapshot is cut into batches
    small = slice_keys(snap, slices, EvalSample(size=500, seed=1), batch_size=97)
    assert all(np.array_equal(a.keys, b.keys) for a, b in zip(parts, small))
    # stratified: each label keeps its share of the slice (rounded down or up)
    labels = {int(k): int(v) for k, v in zip(snap.to_table(["key", "label"]).column("key").to_numpy(),
                                              snap.to_table(["key", "label"]).column("label").to_numpy())}
    for p in slice_keys(snap, slices, EvalSample(fraction=0.1, stratify=True, seed=3)):
        got = np.bincount([labels[int(k)] for k in p.keys], minlength=2)
        for c, n_c in p.strata.items():
            assert abs(got[c] - 0.1 * n_c) <= 1
        assert p.keys.size == round(0.1 * p.population)


def test_confidence_intervals_cover_the_full_value(tmp_path: Path) -> None:
    store = _store(tmp_path, n=20000)
    slices = time_slices(store, n=2)
    models = _models()
    full = evaluate(store, models, slices, inputs={"input": "x"}, metrics=METRICS, record=False)
    hits, total = 0, 0
    for seed in range(10):
        for strat in (False, True):
            s = evaluate(store, models, slices, inputs={"input": "x"}, metrics=METRICS, record=False,
                         sample=EvalSample(size=800, stratify=strat, seed=seed))
            assert s.counts == (800, 800)
            m = s.margins
            assert m is not None and np.all(m > 0) and np.all(m < 0.2)
            hits += int(np.sum(np.abs(s.values - full.values) <= m))
            total += m.size
    assert hits / total >= 0.85  # nominal 95%


def test_bad_samples_are_rejected() -> None:
    for kw in ({}, {"size": 5, "fraction": 0.5}, {"size": 0}, {"fraction": 1.5}, {"size": 3, "seed": -1}):
        with pytest.raises(InvalidArgumentError):
            EvalSample(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [{"size": 3, "seed": 2**64}, {"size": 3, "seed": 10**30}, {"fraction": True}])
def test_seeds_beyond_64_bits_and_boolean_fractions_are_refused(kw: dict) -> None:
    name = "seed" if "seed" in kw else "fraction"
    with pytest.raises(InvalidArgumentError, match=f"invalid {name}="):
        EvalSample(**kw)
    assert EvalSample(size=3, seed=2**64 - 1).seed == 2**64 - 1  # the hash's whole range stays usable


def test_batches_outside_every_slice_are_skipped(tmp_path: Path) -> None:
    from training.evaluation import Slice

    store = _store(tmp_path, n=3000)
    late = [Slice("late", 2500.0, 2999.0, closed=True)]  # early batches hold no row of any slice
    for sample in (None, EvalSample(size=100, seed=1), EvalSample(fraction=0.5, stratify=True)):
        (part,) = slice_keys(store.as_of(), late, sample, batch_size=256)
        assert part.population == 500
        assert part.keys.size == (500 if sample is None else 100 if sample.size else 250)
        assert part.keys.min() >= 2500


def test_models_share_one_read_of_each_slice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.evaluation as ev

    store = _store(tmp_path, n=2000)
    slices = time_slices(store, n=4)
    calls: list[int] = []
    real = ev.loader

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ev, "loader", counting)
    models = {f"m{i}": torch.nn.Linear(4, 2) for i in range(5)}
    out = evaluate(store, models, slices, inputs={"input": "x"}, record=False, sample=EvalSample(size=200))
    assert len(calls) == 4 and out.values.shape[:2] == (5, 4)


@pytest.mark.parametrize("labels", ["binary", "wide", "negative"])
@pytest.mark.parametrize("sample", [EvalSample(size=40, seed=4), EvalSample(fraction=0.05, stratify=True, seed=9),
                                    EvalSample(size=70, stratify=True, seed=2)])
def test_the_sample_is_the_smallest_hashes_of_each_stratum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          labels: str, sample: EvalSample) -> None:
    # pools cut back as soon as they hold 2k keys, so later batches are filtered by the cut
    # before they are sorted; the answer is still the k smallest hashes of every (slice, label)
    from training import eval_sample

    monkeypatch.setattr(eval_sample._BottomK, "SLACK", 0)
    rng = np.random.default_rng(1)
    n = 5000
    lab = {"binary": rng.integers(0, 2, n), "wide": rng.integers(0, 1 << 40, n) % 5 * (1 << 38),
           "negative": rng.integers(-3, 2, n)}[labels]
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(n), "label": lab.astype(np.int64)}))
    snap, slices = store.as_of(), time_slices(store, n=3)
    got = slice_keys(snap, slices, sample, batch_size=53)
    t = snap.to_table(["key", "ts", "label"])
    keys, ts, lab = (t.column(c).to_numpy() for c in ("key", "ts", "label"))
    h = eval_sample._hash(keys, sample.seed)
    for s, (sl, part) in enumerate(zip(slices, got)):
        inside = (ts >= sl.start) & ((ts <= sl.end) if sl.closed else (ts < sl.end))
        assert part.population == int(inside.sum())
        groups = {c: inside & (lab == c) for c in np.unique(lab[inside]).tolist()} if sample.stratify else {0: inside}
        if sample.stratify:
            assert part.strata == {c: int(m.sum()) for c, m in groups.items()}
        total = sample.size if sample.size is not None else round(sample.fraction * part.population)
        want = eval_sample._allocate(total, {c: int(m.sum()) for c, m in groups.items()},
                                     eval_sample._offset(sample.seed, s, part.population)) if sample.stratify \
            else {0: total}
        expected = np.concatenate([keys[m][np.argsort(h[m], kind="stable")[:want[c]]] for c, m in groups.items()])
        assert part.keys.tolist() == np.sort(expected).tolist(), s


def _one_hot_store(k: int = 10, per: int = 10) -> Store:
    lab = np.repeat(np.arange(k), per)
    np.random.default_rng(0).shuffle(lab)
    x = np.eye(k, dtype=np.float32)[lab]
    store = Store.open("memory://eval-sample-strata", create=True)
    store.append(pa.table({"ts": np.arange(lab.size), "label": lab,
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), k)}))
    return store


def test_stratified_sample_with_more_labels_than_rows_is_unbiased() -> None:
    # 10 labels of 10 rows, 5 rows per sample: each label's share is half a row. A model right on
    # labels 5..9 only has accuracy 0.5; rounding the shares the same way for every seed (ties to
    # the lowest label) sampled labels 0..4 only, and reported 0.0 with a margin of 0 every time.
    k = 10
    store = _one_hot_store(k)
    model = torch.nn.Linear(k, k, bias=False)
    w = torch.zeros(k, k)
    for c in range(k):
        w[c if c >= 5 else (c + 1) % 5, c] = 1.0
    model.weight.data = w
    slices = time_slices(store, n=1)
    full = evaluate(store, {"m": model}, slices, inputs={"input": "x"}, metrics=("accuracy",), record=False)
    assert full.values.item() == 0.5
    trials = 100
    got, margins = [], []
    for seed in range(trials):
        s = evaluate(store, {"m": model}, slices, inputs={"input": "x"}, metrics=("accuracy",), record=False,
                     sample=EvalSample(size=5, stratify=True, seed=seed))
        assert s.counts == (5,)
        got.append(s.values.item())
        margins.append(s.margin("accuracy").item())
    # each estimate is a share of 5 rows (sd <= 0.25): the mean of 100 is within 4 sd / 10 of the truth
    assert abs(np.mean(got) - 0.5) < 4 * 0.25 / np.sqrt(trials)
    # a sample that misses the full value never claims an exact one
    assert all(m > 0 for v, m in zip(got, margins) if v != 0.5)


def test_a_margin_from_one_sampled_row_is_undefined() -> None:
    store = _one_hot_store()
    slices = time_slices(store, n=1)
    model = {"m": torch.nn.Linear(10, 10)}
    for strat in (False, True):
        s = evaluate(store, model, slices, inputs={"input": "x"}, metrics=("accuracy", "loss"), record=False,
                     sample=EvalSample(size=1, stratify=strat, seed=3))
        assert s.counts == (1,) and np.isnan(s.margins).all()


def test_intervals_of_a_nearly_always_right_model_cover_its_accuracy() -> None:
    # 99.5% accurate: a sample of 200 holds no error about a third of the time; a normal
    # interval then reported 1.0 +- 0 and missed the slice's value (coverage about 0.67)
    rng = np.random.default_rng(0)
    n = 4000
    label = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.005, 1 - label, label)
    store = Store.open("memory://eval-sample-confident", create=True)
    store.append(pa.table({"ts": np.arange(n), "label": label, "x": pa.FixedSizeListArray.from_arrays(
        pa.array(np.eye(2, dtype=np.float32)[pred].ravel()), 2)}))
    model = torch.nn.Linear(2, 2, bias=False)
    model.weight.data = 3 * torch.eye(2)
    slices = time_slices(store, n=1)
    full = evaluate(store, {"m": model}, slices, inputs={"input": "x"}, metrics=("accuracy",), record=False)
    assert 0.99 < full.values.item() < 1
    trials, hits = 60, 0
    for seed in range(trials):
        s = evaluate(store, {"m": model}, slices, inputs={"input": "x"}, metrics=("accuracy",), record=False,
                     sample=EvalSample(size=200, seed=seed))
        m = s.margin("accuracy").item()
        assert m > 0
        hits += abs(s.values.item() - full.values.item()) <= m
    assert hits / trials >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / trials)  # nominal 95%, 3 standard errors


def test_a_fraction_keeps_a_row_of_every_non_empty_slice() -> None:
    # 0.1 of a 3-row slice rounded to 0 rows: its metrics were NaN over n=0 with no word why
    from training.evaluation import Slice

    store = Store.open("memory://eval-fraction-small", create=True)
    x = np.random.default_rng(0).standard_normal((40, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(40), "label": np.arange(40) % 2,
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    slices = [Slice("small", 0, 3), Slice("large", 3, 39, closed=True), Slice("empty", 100, 200)]
    for sample in (EvalSample(fraction=0.1), EvalSample(fraction=0.1, stratify=True, seed=3),
                   EvalSample(fraction=0.001)):
        parts = slice_keys(store.as_of(), slices, sample)
        assert [p.population for p in parts] == [3, 37, 0]
        assert [p.keys.size for p in parts] == [1, max(1, round(float(sample.fraction or 0) * 37)), 0]
    torch.manual_seed(0)
    m = evaluate(store, {"lin": torch.nn.Linear(2, 2)}, slices, inputs={"input": "x"}, record=False,
                 sample=EvalSample(fraction=0.1))
    assert m.counts == (1, 4, 0) and m.population == (3, 37, 0)
    assert not np.isnan(m.matrix("accuracy")[0, :2]).any()
    assert np.isnan(m.matrix("accuracy")[0, 2])  # a slice without rows has no metric


def _null_label_store(name: str, null_at: list[int]) -> Store:
    store = Store.open(f"memory://{name}", create=True)
    x = np.random.default_rng(0).standard_normal((40, 2)).astype(np.float32)
    lab = pa.array([None if i in null_at else i % 2 for i in range(40)], pa.int64())
    store.append(pa.table({"ts": np.arange(40), "label": lab,
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    return store


@pytest.mark.parametrize("sample", [None, *(EvalSample(size=3, seed=s) for s in range(6)),
                                    EvalSample(fraction=0.1, seed=1), EvalSample(size=5, stratify=True)])
def test_a_null_label_in_a_slice_is_refused_whether_sampled_or_not(sample: EvalSample | None) -> None:
    # a sample that missed the unlabelled row gave metrics silently; one that drew it failed
    # while reading (and a stratified one counted the null as a class of its own)
    from training.evaluation import Slice

    store = _null_label_store("eval-null-label", [25])
    version = store.version
    slices = [Slice("early", 0, 20), Slice("late", 20, 39, closed=True)]
    with pytest.raises(InvalidArgumentError, match=r"invalid label=\"'label' null on 1 rows of slice 'late' "
                                                   r"\(keys \[25\]\)\".*a label on every row"):
        evaluate(store, {"lin": torch.nn.Linear(2, 2)}, slices, inputs={"input": "x"}, sample=sample)
    assert store.version == version  # nothing recorded


def test_null_labels_outside_the_slices_are_not_read() -> None:
    from training.evaluation import Slice

    store = _null_label_store("eval-null-label-outside", [30, 31])
    slices = [Slice("early", 0, 20)]
    m = evaluate(store, {"lin": torch.nn.Linear(2, 2)}, slices, inputs={"input": "x"}, record=False,
                 sample=EvalSample(size=5, stratify=True))
    assert m.counts == (5,) and m.population == (20,)
    assert slice_keys(store.as_of(), slices, EvalSample(size=5, stratify=True))[0].strata == {0: 10, 1: 10}
