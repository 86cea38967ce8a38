"""Policies: triggers (when to train), selection strategies (what), update policies (how).

Every policy is registered by name in :data:`REGISTRY` and round-trips through a plain dict.

Example
-------
>>> import policies
>>> sorted(policies.REGISTRY)
['selection', 'trigger', 'update']
>>> policies.from_config("trigger", {"name": "data_amount", "every": 100})
DataAmount(every=100)
"""

from policies.all_data import AllData
from policies.base import (
    REGISTRY,
    Cutoff,
    Firing,
    ModelLike,
    Policy,
    ScoresLike,
    SelectionContext,
    SelectionStrategy,
    SnapshotLike,
    Trigger,
    TriggerInput,
    UpdateContext,
    UpdateDecision,
    UpdatePolicy,
    from_config,
    get,
    register,
)
from policies.class_balanced import ClassBalanced
from policies.composite import All, AnyOf, AtLeast
from policies.compose import Compose
from policies.cost_budget import CostBudget
from policies.coverage import Coverage
from policies.data_amount import DataAmount
from policies.data_drift import DataDrift
from policies.deletion import Deletion
from policies.deletion_aware_retrain import DeletionAwareRetrain
from policies.drift_aware_retrain import DriftAwareRetrain
from policies.finetune import Finetune
from policies.freshness import Freshness
from policies.gdumb import GDumb
from policies.kcenter import KCenterGreedy
from policies.like_misclassified import LikeMisclassified
from policies.near_duplicates import NearDuplicates
from policies.new_data import NewData
from policies.performance import Performance
from policies.periodic_retrain import PeriodicRetrain
from policies.retrain import Retrain
from policies.rho_loss import RhoLoss
from policies.rs2 import RS2
from policies.score_based import (
    EL2N,
    Entropy,
    GradNorm,
    LeastConfidence,
    Loss,
    Margin,
    ScoreDownsample,
)
from policies.time import Time
from policies.trigger_balanced import TriggerBalanced
from policies.uniform import Uniform

__all__ = [
    "EL2N",
    "REGISTRY",
    "RS2",
    "All",
    "AllData",
    "AnyOf",
    "AtLeast",
    "ClassBalanced",
    "Compose",
    "CostBudget",
    "Coverage",
    "Cutoff",
    "DataAmount",
    "DataDrift",
    "Deletion",
    "DeletionAwareRetrain",
    "DriftAwareRetrain",
    "Entropy",
    "Finetune",
    "Firing",
    "Freshness",
    "GDumb",
    "GradNorm",
    "KCenterGreedy",
    "LeastConfidence",
    "LikeMisclassified",
    "Loss",
    "Margin",
    "ModelLike",
    "NearDuplicates",
    "NewData",
    "Performance",
    "PeriodicRetrain",
    "Policy",
    "Retrain",
    "RhoLoss",
    "ScoreDownsample",
    "ScoresLike",
    "SelectionContext",
    "SelectionStrategy",
    "SnapshotLike",
    "Time",
    "Trigger",
    "TriggerBalanced",
    "TriggerInput",
    "Uniform",
    "UpdateContext",
    "UpdateDecision",
    "UpdatePolicy",
    "from_config",
    "get",
    "register",
]
