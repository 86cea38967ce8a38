"""Selection strategies against plain references: quotas, RS2 plans, score-based picks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies import (
    RS2,
    AllData,
    ClassBalanced,
    Compose,
    Freshness,
    GDumb,
    KCenterGreedy,
    Loss,
    Margin,
    NewData,
    RhoLoss,
    SelectionContext,
    TriggerBalanced,
    Uniform,
    from_config,
)
from fakes import MemoryScores, MemorySnapshot


def snapshot(labels, versions=None, ts=None, version=None) -> MemorySnapshot:  # type: ignore[no-untyped-def]
    labels = np.asarray(labels)
    n = labels.size
    keys = np.arange(100, 100 + n, dtype=np.int64)
    cols = {"key": keys, "ts": np.arange(n) if ts is None else ts, "label": labels}
    if versions is not None:
        cols["_version"] = np.asarray(versions, dtype=np.int64)
    v = version if version is not None else (int(np.max(versions)) if versions is not None else 1)
    return MemorySnapshot(pa.table(cols), v)


def per_label(ts: TrainSet, snap: MemorySnapshot) -> dict:
    lab = snap.take(ts.keys, ["label"]).column("label").to_numpy()
    vals, cnt = np.unique(lab, return_counts=True)
    return dict(zip(vals.tolist(), cnt.tolist()))


def test_class_balanced_exact_quotas() -> None:
    snap = snapshot(np.repeat([0, 1, 2], [50, 30, 5]))
    ts = ClassBalanced(limit=45).select(SelectionContext(snapshot=snap, seed=1))
    # 15 each; class 2 has only 5, its 10 left over split between classes 0 and 1
    assert per_label(ts, snap) == {0: 20, 1: 20, 2: 5}
    ts2 = ClassBalanced(ratio=0.2).select(SelectionContext(snapshot=snap, seed=1))
    assert per_label(ts2, snap) == {0: 6, 1: 6, 2: 5}  # round(0.2 * 85) = 17


def test_class_balanced_string_labels_and_excluded() -> None:
    snap = snapshot(np.repeat(["DOWN", "UP"], [40, 40]))
    excluded = np.arange(100, 130)  # 30 of the DOWN rows are past the cutoff
    ts = ClassBalanced(limit=30).select(SelectionContext(snapshot=snap, excluded=excluded))
    assert per_label(ts, snap) == {"DOWN": 10, "UP": 20}
    assert not np.isin(ts.keys, excluded).any()


def test_trigger_balanced_exact_quotas() -> None:
    versions = np.repeat([1, 2, 3, 4], [40, 4, 30, 26])
    snap = snapshot(np.zeros(100, dtype=int), versions=versions)
    ctx = SelectionContext(snapshot=snap, trigger_cutoffs=(2, 3))
    ts = TriggerBalanced(limit=36).select(ctx)
    # intervals (.., 2]: 44 rows, (2, 3]: 30, (3, 4]: 26 -> 12 each
    assert [int(c) for c in np.bincount(np.searchsorted([2, 3], versions[ts.keys - 100]))] == \
        [12, 12, 12]


def test_gdumb_exact_class_quotas_across_triggers() -> None:
    rng = np.random.default_rng(0)
    labels1 = np.concatenate([np.zeros(40, int), np.ones(10, int), np.full(10, 2)])
    labels2 = rng.permutation(np.repeat([0, 1, 2, 3], 20))
    labels = np.concatenate([labels1, labels2])
    versions = np.repeat([1, 2], [60, 80])
    g = GDumb(memory=12)
    snap1 = snapshot(labels[:60], versions=versions[:60])
    t1 = g.select(SelectionContext(snapshot=snap1))
    assert per_label(t1, snap1) == {0: 4, 1: 4, 2: 4}
    snap2 = snapshot(labels, versions=versions)
    t2 = g.select(SelectionContext(snapshot=snap2, trigger_index=1, trigger_cutoffs=(1,)))
    assert per_label(t2, snap2) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert set(t2.keys[labels[t2.keys - 100] < 3].tolist()) <= set(t1.keys.tolist())


def test_gdumb_uneven_memory_and_deletions() -> None:
    labels = np.tile([0, 1, 2], 30)
    snap = snapshot(labels)
    g = GDumb(memory=10)
    ts = g.select(SelectionContext(snapshot=snap))
    counts = per_label(ts, snap)
    assert sum(counts.values()) == 10 and max(counts.values()) - min(counts.values()) == 1
    # delete two memory samples: the next selection no longer holds them
    gone = ts.keys[:2]
    keep = ~np.isin(snap.keys(), gone)
    table = pa.table({"key": snap.keys()[keep], "ts": np.arange(90)[keep],
                      "label": labels[keep], "_version": np.ones(keep.sum(), dtype=np.int64)})
    snap2 = MemorySnapshot(table, 2)
    ts2 = g.select(SelectionContext(snapshot=snap2, trigger_index=1, trigger_cutoffs=(1,)))
    assert ts2.size == 8 and not np.isin(ts2.keys, gone).any()


def test_gdumb_feeds_new_rows_in_arrival_order_after_a_cutoff_inside_a_version() -> None:
    import uuid

    from modyn_store import Store
    from policies.base import Cutoff

    store = Store.open(f"memory://gdumb-arrival-{uuid.uuid4().hex}", create=True)
    for keys in ([0, 1], [10, 11, 12], [20, 21]):  # versions 1, 2, 3
        store.append(pa.table({"key": keys, "ts": keys, "label": [0] * len(keys)}))
    # the last training used version 2 up to key 10: keys 11 and 12 arrived before 20 and 21,
    # enter the memory of 2 first, and find it full when 20 and 21 come
    ctx = SelectionContext(snapshot=store.as_of(3), trigger_cutoffs=(Cutoff(2, ts=11, key=11),),
                           trigger_index=1)
    assert GDumb(memory=2).select(ctx).keys.tolist() == [11, 12]


class _FailingRead(MemorySnapshot):
    """A snapshot whose third batch of labels fails to read while ``fail`` is set."""

    fail = True

    def to_batches(self, columns=None, filter=None, *, batch_size=65536):  # type: ignore[no-untyped-def]
        for i, b in enumerate(super().to_batches(columns, filter, batch_size=batch_size)):
            if i == 2 and self.fail and columns and "label" in columns:
                raise OSError("read failed")
            yield b


def test_gdumb_memory_unchanged_by_a_failed_selection() -> None:
    labels = np.arange(20) % 2
    snap = _FailingRead(pa.table({"key": np.arange(100, 120), "ts": np.arange(20), "label": labels}), 1)
    ctx = SelectionContext(snapshot=snap, batch_size=3)
    g = GDumb(memory=10)
    with pytest.raises(OSError):
        g.select(ctx)
    assert g._keys.size == 0 and g._labels is None
    snap.fail = False  # selected again, the rows read before the failure enter once
    assert g.select(ctx) == GDumb(memory=10).select(ctx)


def test_rs2_without_replacement_walks_a_permutation() -> None:
    snap = snapshot(np.zeros(40, dtype=int))
    ts = RS2(ratio=0.25, epochs=6).select(SelectionContext(snapshot=snap, seed=5))
    epochs = [ts.keys[ts.for_epoch(e)] for e in range(6)]
    assert [e.size for e in epochs] == [10] * 6
    assert all(np.unique(e).size == 10 for e in epochs)
    first = np.concatenate(epochs[:4])
    assert np.unique(first).size == 40  # epochs 0-3 cover every sample once
    assert not np.array_equal(epochs[0], epochs[4])
    assert np.unique(np.concatenate(epochs[4:])).size == 20


def test_rs2_with_replacement_draws_independently() -> None:
    snap = snapshot(np.zeros(200, dtype=int))
    ts = RS2(ratio=0.1, epochs=8, replacement=True).select(SelectionContext(snapshot=snap))
    epochs = [set(ts.keys[ts.for_epoch(e)].tolist()) for e in range(8)]
    assert all(len(e) == 20 for e in epochs)
    assert len({frozenset(e) for e in epochs}) == 8  # a new subset every epoch
    overlaps = [len(epochs[i] & epochs[i + 1]) for i in range(7)]
    assert sum(overlaps) > 0  # independent draws overlap (expected 2 per pair)
    assert ts.size == len(set().union(*epochs))


def _score_ctx(values: np.ndarray, name: str = "loss", **kw) -> SelectionContext:  # type: ignore[no-untyped-def]
    snap = snapshot(np.zeros(values.size, dtype=int))
    return SelectionContext(snapshot=snap, computed_scores={name: (snap.keys(), values)}, **kw)


@pytest.mark.parametrize("name", ["loss", "gradnorm", "el2n", "least_confidence", "entropy",
                                  "margin"])
def test_score_top_k_matches_numpy(name: str) -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 1, 500)
    ctx = _score_ctx(values, name)
    strategy = from_config("selection", {"name": name, "ratio": 0.1})
    got = strategy.select(ctx)
    keys = ctx.snapshot.keys()
    order = np.argsort(values) if name == "margin" else np.argsort(-values)
    assert got.keys.tolist() == np.sort(keys[order[:50]]).tolist()
    assert np.all(got.weights == 1.0)


def test_top_refuses_a_nan_score_instead_of_returning_fewer_rows() -> None:
    values = np.linspace(0.01, 1.0, 100)
    values[[7, 42]] = np.nan
    ctx = _score_ctx(values)
    with pytest.raises(InvalidArgumentError, match=r"scores\['loss'\]\[key 107\].*2 rows of this batch"):
        Loss(ratio=0.5).select(ctx)
    values[[7, 42]] = np.inf  # an infinite loss ranks first: it is a score
    assert 107 in Loss(ratio=0.1).select(_score_ctx(values)).keys


def test_score_from_real_store_matches_numpy(real_store) -> None:  # type: ignore[no-untyped-def]
    snap = real_store.as_of(None)
    t = real_store.scores.as_of(snap.version, "loss")
    keys, values = t.column("key").to_numpy(), t.column("value").to_numpy()
    got = Loss(limit=17).select(SelectionContext(snapshot=snap, scores=real_store.scores))
    ref = np.sort(keys[np.lexsort((keys, -values))[:17]])
    assert got.keys.tolist() == ref.tolist()


def test_importance_sampling_weights() -> None:
    values = np.linspace(0.01, 1.0, 100)
    ctx = _score_ctx(values)
    hits = np.zeros(100)
    for seed in range(60):
        ts = Loss(ratio=0.1, method="importance").select(ctx.replace(seed=seed))
        idx = ts.keys - 100
        hits[idx] += 1
        assert np.allclose(ts.weights, values.sum() / (100 * values[idx]))
    # inclusion grows with the score: the top decile is drawn far more than the bottom one
    assert hits[90:].sum() > 4 * hits[:10].sum()


def test_batch_then_sample_choose_in_batch() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(64, 5))
    labels = rng.integers(0, 5, 64)
    s = Loss(ratio=0.25, mode="batch_then_sample")
    scores = s.score_batch(logits, labels)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.allclose(scores, -np.log(p[np.arange(64), labels]))
    pos, w = s.choose_in_batch(scores, seed=0)
    assert pos.tolist() == np.sort(np.argsort(-scores)[:16]).tolist() and np.all(w == 1)
    m = Margin(ratio=0.25, mode="batch_then_sample")
    ms = m.score_batch(logits)
    mpos, _ = m.choose_in_batch(ms, seed=0)
    assert mpos.tolist() == np.sort(np.argsort(ms)[:16]).tolist()
    assert s.requires == {"model"}
    full = s.select(_score_ctx(rng.uniform(size=30)))
    assert full.size == 30  # the whole set; the training loop downsamples per batch


def test_compose_class_balanced_then_loss() -> None:
    labels = np.repeat([0, 1], [120, 40])
    snap = snapshot(labels)
    loss = np.random.default_rng(2).uniform(size=160)
    ctx = SelectionContext(snapshot=snap, computed_scores={"loss": (snap.keys(), loss)}, seed=4)
    pre = ClassBalanced(ratio=0.5)
    c = Compose(pre=pre, post=Loss(ratio=0.25))
    first = pre.select(ctx)
    got = c.select(ctx)
    assert per_label(first, snap) == {0: 40, 1: 40}
    inside = first.keys - 100
    ref = np.sort(first.keys[np.argsort(-loss[inside])[:20]])
    assert got.keys.tolist() == ref.tolist()


def test_new_data_since_last_trigger_and_tail() -> None:
    versions = np.repeat([1, 2, 3, 4], 10)
    ts_col = np.random.default_rng(0).permutation(40)
    snap = snapshot(np.zeros(40, dtype=int), versions=versions, ts=ts_col)
    ctx = SelectionContext(snapshot=snap, trigger_cutoffs=(1, 3))
    assert NewData().select(ctx).keys.tolist() == list(range(130, 140))
    assert NewData(tail=2).select(ctx).keys.tolist() == list(range(110, 140))
    assert NewData(tail=3).select(ctx).size == 40
    newest = NewData(tail=2, limit=5).select(ctx)
    cand = np.arange(10, 40)
    assert newest.keys.tolist() == np.sort(100 + cand[np.argsort(-ts_col[cand])[:5]]).tolist()
    uni = NewData(tail=2, limit=5, sample="uniform").select(ctx)
    assert uni.size == 5 and np.all((uni.keys >= 110) & (uni.keys < 140))


def test_all_data_and_uniform() -> None:
    snap = snapshot(np.zeros(50, dtype=int))
    ctx = SelectionContext(snapshot=snap, seed=9, excluded=np.array([100, 149]))
    assert AllData().select(ctx).keys.tolist() == list(range(101, 149))
    assert AllData(limit=3, sample="newest").select(ctx).keys.tolist() == [146, 147, 148]
    draws = [set(Uniform(ratio=0.2).select(ctx.replace(seed=s)).keys.tolist()) for s in range(80)]
    assert all(len(d) == 10 for d in draws)  # round(0.2 * 48)
    freq = np.bincount(np.concatenate([list(d) for d in draws]) - 100, minlength=50)
    assert freq[0] == 0 and freq[49] == 0 and freq[1:49].min() > 0  # every eligible key drawn


def test_freshness_mix() -> None:
    snap = snapshot(np.zeros(60, dtype=int))
    used = TrainSet.uniform(np.arange(100, 140), version=1)
    ctx = SelectionContext(snapshot=snap, history=(used,))
    ts = Freshness(unused_ratio=0.25, limit=20).select(ctx)
    assert int((ts.keys >= 140).sum()) == 5 and ts.size == 20
    ts = Freshness(unused_ratio=1.0, limit=30).select(ctx)  # only 20 unused: 10 used fill in
    assert int((ts.keys >= 140).sum()) == 20 and ts.size == 30


def test_rho_loss_matches_numpy_and_skips_holdout() -> None:
    rng = np.random.default_rng(5)
    snap = snapshot(np.zeros(200, dtype=int))
    keys = snap.keys()
    loss, irr = rng.uniform(0, 3, 200), rng.uniform(0, 1, 200)
    ctx = SelectionContext(snapshot=snap, scores=MemoryScores({"loss": (keys, loss),
                                                                "irreducible_loss": (keys, irr)}))
    r = RhoLoss(limit=25, holdout_ratio=0.1)
    hold = r.holdout(ctx).keys
    assert hold.size == 20
    got = r.select(ctx)
    rest = ~np.isin(keys, hold)
    ref = np.sort(keys[rest][np.argsort(-(loss - irr)[rest])[:25]])
    assert got.keys.tolist() == ref.tolist()


def test_kcenter_covers_better_than_its_own_spacing() -> None:
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(c, 0.1, size=(50, 2)) for c in ((0, 0), (5, 5), (0, 5))])
    snap = snapshot(np.zeros(150, dtype=int))
    ctx = SelectionContext(snapshot=snap, embed=lambda k: emb[np.asarray(k) - 100])
    ts = KCenterGreedy(limit=3).select(ctx)
    clusters = (ts.keys - 100) // 50
    assert sorted(clusters.tolist()) == [0, 1, 2]  # one center per blob
    ts = KCenterGreedy(limit=12).select(ctx)
    chosen = emb[ts.keys - 100]
    d = np.linalg.norm(emb[:, None] - chosen[None], axis=2)
    radius = d.min(axis=1).max()
    pair = np.linalg.norm(chosen[:, None] - chosen[None], axis=2)
    spacing = pair[~np.eye(12, dtype=bool)].min()
    assert radius <= spacing + 1e-12  # farthest-first traversal property


def test_trigger_balanced_one_scan_equals_two_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    import policies.trigger_balanced as tb

    versions = np.repeat([1, 2, 3, 4, 5], [300, 20, 500, 80, 100])
    snap = snapshot(np.zeros(versions.size, dtype=int), versions=versions)
    for seed in range(3):
        ctx = SelectionContext(snapshot=snap, trigger_cutoffs=(1, 2, 4), seed=seed, batch_size=97)
        one = TriggerBalanced(limit=200).select(ctx)
        monkeypatch.setattr(tb, "_ONE_PASS", 0)
        two = TriggerBalanced(limit=200).select(ctx)
        monkeypatch.undo()
        assert one == two
        groups = np.searchsorted([1, 2, 4], versions[one.keys - 100])
        assert np.bincount(groups).tolist() == [60, 20, 60, 60]


def test_sample_picks_newest_or_a_seeded_uniform_share_of_new_and_all_data() -> None:
    # with a limit, "newest" keeps the rows of the latest event times whatever the seed, while
    # "uniform" draws rows that change with the seed (both within the eligible rows)
    versions = np.repeat([1, 2, 3, 4], 10)
    ts_col = np.random.default_rng(0).permutation(40)
    ctx = SelectionContext(snapshot=snapshot(np.zeros(40, dtype=int), versions=versions, ts=ts_col),
                           trigger_cutoffs=(1, 3))
    latest = np.sort(100 + np.argsort(-ts_col)[:5]).tolist()
    for strategy, newest in ((NewData(tail=3, limit=5), True), (NewData(tail=3, limit=5, sample="uniform"), False),
                             (AllData(limit=5, sample="newest"), True), (AllData(limit=5), False)):
        draws = {tuple(strategy.select(ctx.replace(seed=s)).keys.tolist()) for s in range(6)}
        assert all(len(d) == 5 for d in draws)
        assert (draws == {tuple(latest)}) == newest, strategy
        assert (len(draws) > 1) == (not newest), strategy


def test_newest_ranks_uint64_event_times_exactly() -> None:
    # uint64 event times beyond 2**53 (and beyond int64) differ by 1: as float64 they would tie
    # and the smaller key, not the later time, would be kept
    for a in (2**53, 2**64 - 2):
        ts_col = pa.array([a, a + 1, 5], pa.uint64())
        snap = MemorySnapshot(pa.table({"key": np.array([100, 101, 102]), "ts": ts_col}), 1)
        ctx = SelectionContext(snapshot=snap, batch_size=1)
        for strategy in (NewData(limit=1), AllData(limit=1, sample="newest")):
            assert strategy.select(ctx).keys.tolist() == [101], (a, strategy)
        assert AllData(limit=2, sample="newest").select(ctx).keys.tolist() == [100, 101]
