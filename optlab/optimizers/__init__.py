"""First-order optimizers written from the lectures' formulas."""

from optlab.optimizers._adabelief import ScaleByBeliefState, adabelief, scale_by_belief
from optlab.optimizers._adadelta import ScaleByAdaDeltaState, adadelta, scale_by_adadelta
from optlab.optimizers._adafactor import (
    AdafactorStepState,
    FactoredState,
    adafactor,
    scale_by_factored_rms,
)
from optlab.optimizers._adagrad import AdagradState, adagrad, scale_by_adagrad
from optlab.optimizers._adam import AdamState, ScaleByAdamState, adam, scale_by_adam
from optlab.optimizers._adam_variants import (
    ScaleByAmsgradState,
    adamax,
    amsgrad,
    radam,
    scale_by_adamax,
    scale_by_amsgrad,
    scale_by_radam,
)
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
from optlab.optimizers._muon import (
    MuonDimensionNumbers,
    MuonState,
    matrix_dimension_numbers,
    muon,
    muon_labels,
    newton_schulz,
    scale_by_muon,
)
from optlab.optimizers._nadam import NadamState, nadam, scale_by_nadam
from optlab.optimizers._nesterov import NesterovState, nesterov, scale_by_nesterov
from optlab.optimizers._novograd import ScaleByNovogradState, novograd, scale_by_novograd
from optlab.optimizers._prodigy import ProdigyState, prodigy
from optlab.optimizers._registry import (
    OPTIMIZERS,
    DemoForm,
    OptimizerEntry,
    get_optimizer,
    optimizer_names,
    optimizers_help,
)
from optlab.optimizers._rmsprop import RmspropState, rmsprop, scale_by_rmsprop
from optlab.optimizers._rprop import ScaleByRpropState, rprop, scale_by_rprop
from optlab.optimizers._sam import SAMState, sam
from optlab.optimizers._schedule_free import (
    ScheduleFreeState,
    schedule_free_adamw,
    schedule_free_eval_params,
    schedule_free_sgd,
)
from optlab.optimizers._sgd import sgd
from optlab.optimizers._shampoo import ShampooBlocks, ShampooState, scale_by_shampoo, shampoo
from optlab.optimizers._soap import (
    SoapPreconditioner,
    SoapState,
    SoapStepState,
    scale_by_soap,
    soap,
)
from optlab.optimizers._sophia import (
    HutchinsonState,
    SophiaState,
    hutchinson_estimator_diag_hessian,
    scale_by_sophia,
    sophia,
)
from optlab.optimizers._state_dtype import with_state_dtype
from optlab.optimizers._trust_ratio import (
    ScaleByLarsState,
    lamb,
    lars,
    scale_by_lamb,
    scale_by_lars,
    scale_by_trust_ratio,
)
from optlab.optimizers._wrappers import (
    EmaParamsState,
    LookaheadState,
    SkipSpikesState,
    ema_params,
    evaluation_point,
    lookahead,
    skip_spikes,
)
from optlab.optimizers._yogi import scale_by_yogi, yogi

__all__ = [
    "OPTIMIZERS",
    "AdafactorStepState",
    "AdagradState",
    "AdamState",
    "DecoupledStepState",
    "DemoForm",
    "EmaMomentumState",
    "EmaParamsState",
    "FactoredState",
    "HeavyBallState",
    "HutchinsonState",
    "LbfgsState",
    "LookaheadState",
    "MuonDimensionNumbers",
    "MuonState",
    "NadamState",
    "NesterovState",
    "OptimizerEntry",
    "ProdigyState",
    "RmspropState",
    "SAMState",
    "ScaleByAdaDeltaState",
    "ScaleByAdamState",
    "ScaleByAdanState",
    "ScaleByAdemamixState",
    "ScaleByAmsgradState",
    "ScaleByBeliefState",
    "ScaleByLarsState",
    "ScaleByLearningRateState",
    "ScaleByLionState",
    "ScaleByNovogradState",
    "ScaleByRpropState",
    "ScheduleFreeState",
    "ShampooBlocks",
    "ShampooState",
    "SkipSpikesState",
    "SoapPreconditioner",
    "SoapState",
    "SoapStepState",
    "SophiaState",
    "VelocityState",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "adan",
    "ademamix",
    "adopt",
    "amsgrad",
    "decoupled_step",
    "ema_params",
    "evaluation_point",
    "get_optimizer",
    "hutchinson_estimator_diag_hessian",
    "lamb",
    "lars",
    "lbfgs",
    "lion",
    "lookahead",
    "matrix_dimension_numbers",
    "momentum",
    "muon",
    "muon_labels",
    "nadam",
    "nesterov",
    "newton_schulz",
    "novograd",
    "optimizer_names",
    "optimizers_help",
    "prodigy",
    "radam",
    "rmsprop",
    "rprop",
    "sam",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_ema_momentum",
    "scale_by_factored_rms",
    "scale_by_heavy_ball",
    "scale_by_lamb",
    "scale_by_lars",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_muon",
    "scale_by_nadam",
    "scale_by_nesterov",
    "scale_by_novograd",
    "scale_by_radam",
    "scale_by_rmsprop",
    "scale_by_rprop",
    "scale_by_shampoo",
    "scale_by_soap",
    "scale_by_sophia",
    "scale_by_trust_ratio",
    "scale_by_velocity",
    "scale_by_yogi",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "sgd",
    "shampoo",
    "skip_spikes",
    "soap",
    "sophia",
    "with_state_dtype",
    "yogi",
]
