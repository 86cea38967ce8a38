"""Every documented selection strategy and option changes what a pipeline trains on.

Each case runs a small Elec2 pipeline (3,000 rows, a training every 14 days, an MLP) with one
strategy configuration and checks the recorded trainings against an expectation computed here,
independently of the strategy's code: from the store's rows, the previous model's checkpoint
and plain NumPy. Each check fails when its option is ignored.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from pipeline_helpers import tiny
from selection_docs import _documented_selection

from modyn_store import Store
from modyn_store.core.trainings import Catalog


@dataclass
class Run:
    store: Store
    cat: Catalog
    ids: list[str]
    cutoffs: list[tuple[int, int]]

    def rec(self, i: int) -> Any:
        return self.cat.get(self.ids[i])

    def keys(self, i: int) -> np.ndarray:
        return np.sort(self.cat.train_set(self.ids[i]).keys)

    def train_set(self, i: int) -> Any:
        return self.cat.train_set(self.ids[i])

    def eligible(self, i: int) -> np.ndarray:
        """Keys within training ``i``'s cutoff: earlier versions plus the first rows of its version."""
        version, position = self.cutoffs[i]
        before = self.store.as_of(version - 1).keys() if version > 1 else np.empty(0, np.int64)
        delta = self.store.delta(version - 1, version)
        return np.union1d(before, delta.inserted.column("key").to_numpy()[:position])

    def new(self, i: int, tail: int = 1) -> np.ndarray:
        return np.setdiff1d(self.eligible(i), self.eligible(i - tail) if i >= tail else np.empty(0, np.int64))

    def rows(self, keys: np.ndarray, cols: list[str]) -> dict[str, np.ndarray]:
        t = self.store.as_of(None).take(keys, columns=cols)
        out = {}
        for c in cols:
            col = t.column(c)
            out[c] = (np.array(col.to_pylist(), dtype=np.float32) if c == "features" else col.to_numpy())
        return out

    def model(self, training_id: str) -> Any:
        from training.models import build_model

        cfg = self.rec_by_id(training_id).config
        m = build_model(cfg["model"], **cfg["model_params"])
        m.load_state_dict(self.cat.load_checkpoint(training_id))
        return m.eval()

    def rec_by_id(self, training_id: str) -> Any:
        return self.cat.get(training_id)

    def forward(self, training_id: str, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Logits, labels and the last linear layer's input of ``keys`` under a recorded model."""
        import torch

        m = self.model(training_id)
        r = self.rows(keys, ["features", "label"])
        captured: list[torch.Tensor] = []
        last = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)][-1]
        hook = last.register_forward_hook(lambda _m, inp, _o: captured.append(inp[0]))
        with torch.no_grad():
            z = m(features=torch.from_numpy(r["features"])).double().numpy()
        hook.remove()
        return z, r["label"].astype(np.int64), captured[0].double().numpy()


def _run(selection: dict[str, Any], **over: Any) -> Run:
    return _cached(json.dumps(selection, sort_keys=True), json.dumps(over, sort_keys=True))


@functools.lru_cache(maxsize=None)
def _cached(selection: str, over: str) -> Run:
    from modyn_store.app.pipeline import parse_pipeline, run_pipeline

    extra = {"model": {"name": "mlp", "params": {"hidden": [8]}},
             "training": {"epochs": 2, "batch_size": 100, "lr": 0.01}, **json.loads(over)}
    cfg = parse_pipeline(tiny("opt", selection=json.loads(selection), **extra))
    path = tempfile.mkdtemp(prefix="selopt-") + "/s"
    res = run_pipeline(cfg, path)
    store = Store.open(path)
    return Run(store, Catalog(store), [t.training_id for t in res.trainings], [t.cutoff for t in res.trainings])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _reference_score(name: str, z: np.ndarray, y: np.ndarray, h: np.ndarray) -> np.ndarray:
    p = _softmax(z)
    err = np.sqrt(((p - np.eye(p.shape[1])[y]) ** 2).sum(axis=1))
    ps = -np.sort(-p, axis=1)
    return {"loss": -np.log(p[np.arange(y.size), y]), "el2n": err, "entropy": -(p * np.log(p)).sum(axis=1),
            "least_confidence": 1 - p.max(axis=1), "margin": ps[:, 0] - ps[:, 1],
            "gradnorm": err * np.sqrt(1 + (h ** 2).sum(axis=1))}[name]


def _top(keys: np.ndarray, values: np.ndarray, k: int, largest: bool) -> np.ndarray:
    order = np.lexsort((keys, -values if largest else values))
    return np.sort(keys[order[:k]])


SCORE_STRATEGIES = ("loss", "gradnorm", "el2n", "least_confidence", "entropy", "margin")


def _check_score_top(name: str, ratio: float | None = None, limit: int | None = None) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(1, len(run.ids)):
            pool = run.eligible(i)
            z, y, h = run.forward(run.ids[i - 1], pool)
            k = int(round(ratio * pool.size)) if ratio is not None else pool.size
            k = min(k, limit) if limit is not None else k
            want = _top(pool, _reference_score(name, z, y, h), k, largest=name != "margin")
            got = run.keys(i)
            assert got.size == k
            # float32 forward passes may order near-ties differently: allow 1% at the boundary
            assert np.intersect1d(got, want).size >= 0.99 * k, (name, i)
    return check


def _check_importance(name: str) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(1, len(run.ids)):
            ts = run.train_set(i)
            assert ts.size == int(round(0.2 * run.eligible(i).size))
            assert not np.allclose(ts.weights, 1.0)  # importance weights W / (N w_i)
            z, y, h = run.forward(run.ids[i - 1], ts.keys)
            s = _reference_score(name, z, y, h)
            w = s if name != "margin" else 1 - s
            ratio = ts.weights * w  # = W / N, the same for every chosen key
            assert np.allclose(ratio, ratio[0], rtol=1e-3), name
    return check


def _holdout(run: Run, i: int) -> np.ndarray:
    il = run.rec(i).policy_params.get("irreducible_model")
    return run.cat.train_set(il).keys if il else np.empty(0, np.int64)


def _offered(run: Run, i: int) -> np.ndarray:
    """Eligible rows minus RHO-LOSS's holdout (when the training had one)."""
    return np.setdiff1d(run.eligible(i), _holdout(run, i))


def _check_batch_then_sample(ratio: float) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(len(run.ids)):
            n = _offered(run, i).size
            assert run.keys(i).size == n  # every eligible row is offered ...
            sizes = [100] * (n // 100) + ([n % 100] if n % 100 else [])
            trained = 2 * sum(int(round(ratio * b)) for b in sizes)  # ... each batch trains on its share
            rec = run.rec(i)
            assert rec.cost.samples == trained
            assert rec.metrics["batch_then_sample"] == {"scored": 2 * n, "trained": trained}
    return check


def _check_period(run: Run, exact: bool = True) -> None:
    for i in range(len(run.ids)):
        ts, rec = run.train_set(i), run.rec(i)
        assert rec.metrics["reselections"] == 1 and len(ts.per_epoch) == 2  # rescored before epoch 1
        k = int(round(0.2 * _offered(run, i).size))
        # importance sampling on RHO-LOSS draws only rows of positive reducible loss
        assert all(p.size == k if exact else 0 < p.size <= k for p in ts.per_epoch)
    assert any(not np.array_equal(run.train_set(i).for_epoch(0), run.train_set(i).for_epoch(1))
               for i in range(1, len(run.ids)))


def _check_rho(holdout_ratio: float, ratio: float) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(1, len(run.ids)):
            rec = run.rec(i)
            il = rec.policy_params["irreducible_model"]
            hold = np.sort(run.cat.train_set(il).keys)
            pool = run.eligible(i)
            assert hold.size == int(round(holdout_ratio * pool.size)) and np.isin(hold, pool).all()
            got = run.keys(i)
            assert np.intersect1d(got, hold).size == 0  # never a holdout row
            rest = np.setdiff1d(pool, hold)
            z, y, _ = run.forward(run.ids[i - 1], rest)
            zi, _, _ = run.forward(il, rest)
            reducible = _reference_score("loss", z, y, z) - _reference_score("loss", zi, y, zi)
            k = int(round(ratio * rest.size))
            want = _top(rest, reducible, k, largest=True)
            assert got.size == k and np.intersect1d(got, want).size >= 0.99 * k
            assert run.rec_by_id(il).metrics["role"] == "irreducible_loss_model"
    return check


def _check_sizes(fn: Callable[[Run, int], int], subset: Callable[[Run, int], np.ndarray]) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(len(run.ids)):
            got = run.keys(i)
            assert got.size == fn(run, i) and np.isin(got, subset(run, i)).all()
    return check


def _newest(run: Run, keys: np.ndarray, k: int) -> np.ndarray:
    ts = run.rows(keys, ["ts"])["ts"].astype("int64")
    return np.sort(keys[np.lexsort((-keys, -ts))[:k]])


def _check_new_data(tail: int) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(len(run.ids)):
            np.testing.assert_array_equal(run.keys(i), run.new(i, tail))
    return check


def _check_limited(which: str, sample: str) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(len(run.ids)):
            pool = run.new(i) if which == "new" else run.eligible(i)
            got = run.keys(i)
            assert got.size == min(100, pool.size) and np.isin(got, pool).all()
            newest = _newest(run, pool, got.size)
            if pool.size > 200:
                assert np.array_equal(got, newest) == (sample == "newest"), (which, sample, i)
    return check


def _check_freshness(unused_ratio: float) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(1, len(run.ids)):
            used = np.concatenate([run.keys(j) for j in range(i)])
            got = run.keys(i)
            k = int(round(0.5 * run.eligible(i).size))
            unused_pool = np.setdiff1d(run.eligible(i), used)
            want_unused = min(int(round(unused_ratio * k)), unused_pool.size)
            want_unused = max(want_unused, k - np.intersect1d(run.eligible(i), used).size)
            assert got.size == k and np.setdiff1d(got, used).size == want_unused, (unused_ratio, i)
    return check


def _check_rs2(epochs: int, replacement: bool) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(len(run.ids)):
            ts = run.train_set(i)
            n = run.eligible(i).size
            assert len(ts.per_epoch) == epochs and np.isin(ts.keys, run.eligible(i)).all()
            plans = [set(ts.keys[p].tolist()) for p in ts.per_epoch]
            assert all(len(p) == int(round(0.2 * n)) for p in plans)
            overlap = len(plans[0] & plans[1])
            assert (overlap > 0) == replacement, (replacement, i)  # a permutation walk never repeats early
    return check


def _labels(run: Run, keys: np.ndarray) -> np.ndarray:
    return run.rows(keys, ["label"])["label"]


def _check_class_balanced(run: Run) -> None:
    for i in range(len(run.ids)):
        pool = run.eligible(i)
        k = int(round(0.2 * pool.size))
        got = run.keys(i)
        counts = np.bincount(_labels(run, got), minlength=2)
        avail = np.bincount(_labels(run, pool), minlength=2)
        quota = np.minimum(avail, max(k // 2, k - avail.min()))
        assert got.size == k and np.abs(counts - quota).max() <= 1, (counts, avail)


def _check_trigger_balanced(run: Run) -> None:
    for i in range(1, len(run.ids)):
        got = run.keys(i)
        groups = [np.intersect1d(got, run.new(j) if j else run.eligible(0)).size for j in range(i + 1)]
        assert got.size == 150 and max(groups) - min(groups) <= 1, groups


def _check_gdumb(run: Run) -> None:
    for i in range(len(run.ids)):
        got = run.keys(i)
        counts = np.bincount(_labels(run, got), minlength=2)
        assert got.size == 200 and abs(int(counts[0]) - int(counts[1])) <= 1, counts


def _check_kcenter(limit: int) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(1, len(run.ids)):
            pool = run.eligible(i)
            got = run.keys(i)
            assert got.size == limit
            _, _, h = run.forward(run.ids[i - 1], pool)
            chosen = h[np.searchsorted(pool, got)]
            radius = np.sqrt(((h[:, None] - chosen[None]) ** 2).sum(axis=2)).min(axis=1).max()
            pair = np.sqrt(((chosen[:, None] - chosen[None]) ** 2).sum(axis=2))
            assert radius <= pair[~np.eye(limit, dtype=bool)].min() + 1e-5  # farthest-first traversal
    return check


def _check_compose(run: Run) -> None:
    for i in range(1, len(run.ids)):
        pool = run.new(i)
        z, y, h = run.forward(run.ids[i - 1], pool)
        k = int(round(0.5 * pool.size))
        want = _top(pool, _reference_score("loss", z, y, h), k, largest=True)
        got = run.keys(i)
        assert got.size == k and np.intersect1d(got, want).size >= 0.99 * k


def _knn(h: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force ``k`` nearest rows of ``h`` per query (squared L2; ties: lower index)."""
    d2 = ((queries[:, None, :] - h[None]) ** 2).sum(axis=2)
    order = np.lexsort((np.broadcast_to(np.arange(h.shape[0]), d2.shape), d2), axis=1)[:, :k]
    return order, np.take_along_axis(d2, order, axis=1)


def _check_near_duplicates(radius: float, k: int) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(1, len(run.ids)):
            pool = run.eligible(i)
            _, _, h = run.forward(run.ids[i - 1], pool)
            nn, d2 = _knn(h, h, k + 1)
            dup = ((pool[nn] < pool[:, None]) & (d2 <= radius**2)).any(axis=1)
            want, got = pool[~dup], run.keys(i)
            assert 0 < dup.sum() < pool.size  # the radius matters on this stream
            assert np.setxor1d(got, want).size <= 0.01 * pool.size, (radius, k, i)
    return check


def _check_like_misclassified(seeds: int, k: int, limit: int | None) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(1, len(run.ids)):
            pool = run.eligible(i)
            z, y, h = run.forward(run.ids[i - 1], pool)
            loss = _reference_score("loss", z, y, h)
            wrong = np.flatnonzero(z.argmax(axis=1) != y)
            seed_idx = wrong[np.lexsort((pool[wrong], -loss[wrong]))[:seeds]]
            nn, d2 = _knn(h, h[seed_idx], k + 1)
            flat, dist = nn.ravel(), d2.ravel()
            by = flat[np.lexsort((pool[flat], dist))]
            _, first = np.unique(by, return_index=True)
            neigh = by[np.sort(first)]
            neigh = neigh[~np.isin(neigh, seed_idx)]
            want = np.concatenate([pool[seed_idx], pool[neigh]])
            want = np.sort(want[:limit] if limit is not None else want)
            got = run.keys(i)
            assert got.size == want.size and np.intersect1d(got, want).size >= 0.95 * want.size, (seeds, k, i)
            assert seed_idx.size == min(seeds, wrong.size)
    return check


def _check_coverage(k: int, size: Callable[[int], int]) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        for i in range(1, len(run.ids)):
            pool = run.eligible(i)
            _, _, h = run.forward(run.ids[i - 1], pool)
            nn, _ = _knn(h, h, k + 1)
            hoods = [set(r) | {j} for j, r in enumerate(nn.tolist())]
            covered: set[int] = set()
            want = []
            for _ in range(size(pool.size)):  # plain greedy set cover, ties to the lowest position
                gains = [-1 if j in want else len(hd - covered) for j, hd in enumerate(hoods)]
                best = int(np.argmax(gains))
                want.append(best)
                covered |= hoods[best]
            got = run.keys(i)
            assert got.size == len(want)
            assert np.intersect1d(got, pool[want]).size >= 0.9 * len(want), (k, i)
    return check


CASES: dict[str, tuple[dict[str, Any], dict[str, Any], Callable[[Run], None]]] = {
    "new_data": ({"name": "new_data"}, {}, _check_new_data(1)),
    "new_data.tail": ({"name": "new_data", "tail": 2}, {}, _check_new_data(2)),
    "new_data.limit+sample=newest": ({"name": "new_data", "limit": 100}, {}, _check_limited("new", "newest")),
    "new_data.sample=uniform": ({"name": "new_data", "limit": 100, "sample": "uniform"}, {},
                                _check_limited("new", "uniform")),
    "all_data": ({"name": "all_data"}, {}, lambda run: [np.testing.assert_array_equal(run.keys(i), run.eligible(i))
                                                       for i in range(len(run.ids))] and None),
    "all_data.limit+sample=uniform": ({"name": "all_data", "limit": 100}, {}, _check_limited("all", "uniform")),
    "all_data.sample=newest": ({"name": "all_data", "limit": 100, "sample": "newest"}, {},
                               _check_limited("all", "newest")),
    "uniform.ratio": ({"name": "uniform", "ratio": 0.3}, {},
                      _check_sizes(lambda r, i: int(round(0.3 * r.eligible(i).size)), Run.eligible)),
    "uniform.limit": ({"name": "uniform", "ratio": 0.9, "limit": 77}, {},
                      _check_sizes(lambda r, i: min(77, int(round(0.9 * r.eligible(i).size))), Run.eligible)),
    "freshness.unused_ratio=1": ({"name": "freshness", "unused_ratio": 1.0, "ratio": 0.5}, {}, _check_freshness(1.0)),
    "freshness.unused_ratio=0": ({"name": "freshness", "unused_ratio": 0.0, "ratio": 0.5}, {}, _check_freshness(0.0)),
    "freshness.limit": ({"name": "freshness", "ratio": 0.5, "limit": 60}, {},
                        _check_sizes(lambda r, i: min(60, int(round(0.5 * r.eligible(i).size))), Run.eligible)),
    "rs2.ratio+epochs": ({"name": "rs2", "ratio": 0.2, "epochs": 3}, {}, _check_rs2(3, False)),
    "rs2.replacement": ({"name": "rs2", "ratio": 0.2, "epochs": 4, "replacement": True}, {}, _check_rs2(4, True)),
    "rs2.limit": ({"name": "rs2", "ratio": 0.9, "limit": 50, "epochs": 2}, {},
                  lambda run: [None for i in range(len(run.ids))
                               if not all(p.size == 50 for p in run.train_set(i).per_epoch)] == [] or
                  pytest.fail("rs2 limit ignored")),
    "class_balanced.ratio": ({"name": "class_balanced", "ratio": 0.2}, {}, _check_class_balanced),
    "class_balanced.limit": ({"name": "class_balanced", "limit": 40}, {},
                             _check_sizes(lambda r, i: 40, Run.eligible)),
    "trigger_balanced.limit": ({"name": "trigger_balanced", "limit": 150}, {}, _check_trigger_balanced),
    "trigger_balanced.ratio": ({"name": "trigger_balanced", "ratio": 0.1}, {},
                               _check_sizes(lambda r, i: int(round(0.1 * r.eligible(i).size)), Run.eligible)),
    "gdumb.memory": ({"name": "gdumb", "memory": 200}, {"update": {"name": "retrain"}}, _check_gdumb),
    "rho_loss.ratio+holdout_ratio": ({"name": "rho_loss", "ratio": 0.3, "holdout_ratio": 0.2}, {},
                                     _check_rho(0.2, 0.3)),
    "rho_loss.holdout_ratio=0.4": ({"name": "rho_loss", "ratio": 0.3, "holdout_ratio": 0.4}, {},
                                   _check_rho(0.4, 0.3)),
    "kcenter_greedy.limit+embedding": ({"name": "kcenter_greedy", "limit": 12, "embedding": "embedding"}, {},
                                       _check_kcenter(12)),
    "kcenter_greedy.ratio": ({"name": "kcenter_greedy", "ratio": 0.05}, {},
                             _check_sizes(lambda r, i: int(round(0.05 * r.eligible(i).size)), Run.eligible)),
    "near_duplicates.radius+k+embedding": ({"name": "near_duplicates", "radius": 0.05, "k": 5,
                                            "embedding": "embedding"}, {}, _check_near_duplicates(0.05, 5)),
    "near_duplicates.radius=0.02,k=2": ({"name": "near_duplicates", "radius": 0.02, "k": 2}, {},
                                        _check_near_duplicates(0.02, 2)),
    "like_misclassified.seeds+k+embedding": ({"name": "like_misclassified", "seeds": 20, "k": 3,
                                              "embedding": "embedding"}, {}, _check_like_misclassified(20, 3, None)),
    "like_misclassified.limit": ({"name": "like_misclassified", "seeds": 30, "k": 5, "limit": 40}, {},
                                 _check_like_misclassified(30, 5, 40)),
    "coverage.limit+k+embedding": ({"name": "coverage", "limit": 25, "k": 8, "embedding": "embedding"}, {},
                                   _check_coverage(8, lambda n: 25)),
    "coverage.ratio": ({"name": "coverage", "ratio": 0.02, "k": 4}, {},
                       _check_coverage(4, lambda n: int(round(0.02 * n)))),
    "compose.pre+post": ({"name": "compose", "pre": {"name": "new_data"}, "post": {"name": "loss", "ratio": 0.5}},
                         {}, _check_compose),
}
for _s in SCORE_STRATEGIES:
    CASES[f"{_s}.ratio"] = ({"name": _s, "ratio": 0.2}, {}, _check_score_top(_s, ratio=0.2))
    CASES[f"{_s}.limit"] = ({"name": _s, "ratio": 0.5, "limit": 60}, {}, _check_score_top(_s, 0.5, 60))
    CASES[f"{_s}.method=importance"] = ({"name": _s, "ratio": 0.2, "method": "importance"}, {},
                                        _check_importance(_s))
    CASES[f"{_s}.mode=batch_then_sample"] = ({"name": _s, "ratio": 0.3, "mode": "batch_then_sample"}, {},
                                             _check_batch_then_sample(0.3))
    CASES[f"{_s}.period"] = ({"name": _s, "ratio": 0.2, "period": 1}, {}, _check_period)
CASES["rho_loss.mode=batch_then_sample"] = ({"name": "rho_loss", "ratio": 0.3, "mode": "batch_then_sample"}, {},
                                            _check_batch_then_sample(0.3))
CASES["rho_loss.limit"] = ({"name": "rho_loss", "ratio": 0.5, "limit": 40}, {},
                           _check_sizes(lambda r, i: 40, Run.eligible))
CASES["rho_loss.method+period"] = ({"name": "rho_loss", "ratio": 0.2, "method": "importance", "period": 1}, {},
                                   lambda run: (_check_period(run, exact=False), [pytest.fail("importance weights missing")
                                                                    for i in range(len(run.ids))
                                                                    if np.allclose(run.train_set(i).weights, 1)]))


# The default run covers the modes and strategies this module was written for; CI's slow job
# (``-m slow`` on tests/pipeline) runs every case.
DEFAULT_CASES = {"loss.mode=batch_then_sample", "loss.period", "rho_loss.ratio+holdout_ratio",
                 "gradnorm.ratio", "near_duplicates.radius+k+embedding", "like_misclassified.limit",
                 "coverage.limit+k+embedding"}


@pytest.mark.parametrize("case", [c if c in DEFAULT_CASES else pytest.param(c, marks=pytest.mark.slow)
                                  for c in sorted(CASES)])
def test_option_changes_what_the_pipeline_trains_on(case: str) -> None:
    selection, over, check = CASES[case]
    run = _run(selection, **over)
    assert len(run.ids) >= 3, case
    check(run)


def test_every_documented_option_has_a_pipeline_case() -> None:
    covered: dict[str, set[str]] = {}
    for selection, _, _ in CASES.values():
        covered.setdefault(selection["name"], set()).update(k for k in selection if k != "name")
    for name, params in _documented_selection().items():
        assert params <= covered.get(name, set()), (name, params - covered.get(name, set()))
