"""Training, scoring and checkpoints on a CUDA device: the CPU's results within float tolerance
(the `gpu` tests skip without a device), and what deterministic training on CUDA needs."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from modyn_store.core.trainings import Catalog
from tests.training.test_trainer import CFG as TRAINER_CFG
from tests.training.test_trainer import _weighted_set as _train_set
from training.models import build_model
from training.scoring import score
from training.trainer import deterministic, state_equal, train

DEV = "cuda"
CFG = replace(TRAINER_CFG, grad_accum=1)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def test_deterministic_sets_the_cublas_workspace_unless_the_user_did(monkeypatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with deterministic(False):
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    with deterministic(True):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    with deterministic(True):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


MODEL_INPUTS = {
    "logreg": ({"in_features": 7, "n_classes": 3}, lambda g: (torch.randn(6, 7, generator=g),)),
    "mlp": ({"in_features": 7, "n_classes": 3, "hidden": [16, 8]}, lambda g: (torch.randn(6, 7, generator=g),)),
    "dlrm": ({"n_dense": 4, "cardinalities": [10, 20, 30], "embedding_dim": 6, "bottom": [8], "top": [12],
              "n_classes": 2},
             lambda g: (torch.randn(6, 4, generator=g), torch.randint(0, 2**40, (6, 3), generator=g))),
    "text_bag": ({"n_buckets": 64, "n_classes": 4, "embedding_dim": 5, "hidden": [6]},
                 lambda g: (torch.tensor([3, 9, 9, 40, 2, 63, 7]), torch.tensor([0, 2, 2, 3, 6, 6, 7]))),
}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(MODEL_INPUTS))
def test_every_model_runs_on_cuda_under_deterministic_algorithms(name: str) -> None:
    params, make = MODEL_INPUTS[name]
    torch.manual_seed(0)
    cpu = build_model(name, **params)
    dev = build_model(name, **params)
    dev.load_state_dict(cpu.state_dict())
    dev.to(DEV)
    args = make(torch.Generator().manual_seed(1))
    with deterministic(True):
        out_cpu = cpu(*args)
        out_dev = dev(*[a.to(DEV) for a in args])
        out_cpu.logsumexp(dim=1).sum().backward()
        out_dev.logsumexp(dim=1).sum().backward()
    torch.testing.assert_close(out_dev.cpu(), out_cpu, rtol=1e-4, atol=1e-5)
    for (n, p), q in zip(cpu.named_parameters(), dev.parameters()):
        assert q.grad is not None, n
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-4, atol=1e-5, msg=n)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_matches_the_cpu(store) -> None:
    """Default config (deterministic algorithms): the same weights and losses within float tolerance."""
    ts = _train_set(store)
    cpu = train(store, ts, CFG, record=False)
    dev = train(store, ts, replace(CFG, device=DEV), record=False)
    assert next(dev.model.parameters()).device.type == torch.device(DEV).type
    got, want = _cpu_state(dev.model), _cpu_state(cpu.model)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-3, atol=1e-4, msg=k)
    np.testing.assert_allclose(dev.epoch_losses, cpu.epoch_losses, rtol=1e-4)
    assert dev.cost.samples == cpu.cost.samples == 600 and 0 < dev.cost.device_s <= dev.cost.wall_s


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_amp_training_on_cuda_follows_the_float32_run(store) -> None:
    """float16 autocast with a gradient scaler: finite, and close to the float32 losses."""
    ts = _train_set(store)
    fp32 = train(store, ts, replace(CFG, device=DEV), record=False)
    amp = train(store, ts, replace(CFG, device=DEV, amp=True), record=False)
    assert all(np.isfinite(amp.epoch_losses))
    np.testing.assert_allclose(amp.epoch_losses, fp32.epoch_losses, rtol=5e-2)
    assert state_equal(_cpu_state(amp.model), _cpu_state(fp32.model)) != []  # float16 did run


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_checkpoint_of_a_cuda_training_loads_on_the_cpu(store) -> None:
    ts = _train_set(store, 100)
    res = train(store, ts, replace(CFG, device=DEV, epochs=1), training_id="on-cuda")
    stored = Catalog(store).load_checkpoint("on-cuda")
    assert all(v.device.type == "cpu" for v in stored.values())
    assert state_equal(stored, _cpu_state(res.model)) == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_scores_on_cuda_match_the_cpu(store) -> None:
    ts = _train_set(store, 200)
    model = train(store, ts, replace(CFG, epochs=1), record=False).model.cpu()
    names = ("loss", "least_confidence", "entropy", "margin", "el2n", "gradnorm")
    cpu = score(store, model, inputs={"features": "x"}, train_set=ts, scores=names, write=False)
    dev = score(store, model, inputs={"features": "x"}, train_set=ts, scores=names, write=False, device=DEV)
    np.testing.assert_array_equal(dev.keys, cpu.keys)
    for n in names:
        np.testing.assert_allclose(dev.values[n], cpu.values[n], rtol=1e-4, atol=1e-6, err_msg=n)
