"""First-order optimizers written from the lectures' formulas."""

from optlab.optimizers._adagrad import AdagradState, adagrad, scale_by_adagrad
from optlab.optimizers._adam import AdamState, ScaleByAdamState, adam, scale_by_adam
from optlab.optimizers._adamw import DecoupledStepState, adamw, decoupled_step
from optlab.optimizers._adan import ScaleByAdanState, adan, scale_by_adan
from optlab.optimizers._ademamix import ScaleByAdemamixState, ademamix, scale_by_ademamix
from optlab.optimizers._adopt import adopt, scale_by_adopt
from optlab.optimizers._base import ScaleByLearningRateState, scale_by_learning_rate
from optlab.optimizers._lbfgs import LbfgsState, lbfgs
from optlab.optimizers._lion import ScaleByLionState, lion, scale_by_lion
from optlab.optimizers._momentum import (
    EmaMomentumState,
    HeavyBallState,
    VelocityState,
    momentum,
    scale_by_ema_momentum,
    scale_by_heavy_ball,
    scale_by_velocity,
)
from optlab.optimizers._nadam import NadamState, nadam, scale_by_nadam
from optlab.optimizers._nesterov import NesterovState, nesterov, scale_by_nesterov
from optlab.optimizers._registry import (
    OPTIMIZERS,
    DemoForm,
    OptimizerEntry,
    get_optimizer,
    optimizer_names,
    optimizers_help,
)
from optlab.optimizers._rmsprop import RmspropState, rmsprop, scale_by_rmsprop
from optlab.optimizers._sgd import sgd
from optlab.optimizers._state_dtype import with_state_dtype

__all__ = [
    "OPTIMIZERS",
    "AdagradState",
    "AdamState",
    "DecoupledStepState",
    "DemoForm",
    "EmaMomentumState",
    "HeavyBallState",
    "LbfgsState",
    "NadamState",
    "NesterovState",
    "OptimizerEntry",
    "RmspropState",
    "ScaleByAdamState",
    "ScaleByAdanState",
    "ScaleByAdemamixState",
    "ScaleByLearningRateState",
    "ScaleByLionState",
    "VelocityState",
    "adagrad",
    "adam",
    "adamw",
    "adan",
    "ademamix",
    "adopt",
    "decoupled_step",
    "get_optimizer",
    "lbfgs",
    "lion",
    "momentum",
    "nadam",
    "nesterov",
    "optimizer_names",
    "optimizers_help",
    "rmsprop",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adan",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_ema_momentum",
    "scale_by_heavy_ball",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_nadam",
    "scale_by_nesterov",
    "scale_by_rmsprop",
    "scale_by_velocity",
    "sgd",
    "with_state_dtype",
]
