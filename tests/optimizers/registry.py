"""One registry of every optimizer and form, shared by the contract and property tests.

``LECTURE_SPECS``: the lectures' optimizers (the quick tier checks them). ``SHELF_SPECS``:
the optimizers from the papers since, one spec file per family (checked in the full tier,
``pytest -m ""``, to keep the quick tier under its budget). ``SPECS``: both.
"""

import optlab
from optlab.testing import OptimizerSpec
from tests.optimizers import (
    specs_adafactor,
    specs_adam_variants,
    specs_belief_yogi_adadelta,
    specs_like_existing,
    specs_matrix,
    specs_muon,
    specs_rprop_novograd,
    specs_sam_sophia,
    specs_schedule_free_prodigy,
    specs_sign_family,
    specs_trust_ratio,
    specs_wrappers,
)

LECTURE_SPECS = [
    OptimizerSpec("sgd", lambda learning_rate: optlab.sgd(learning_rate), 1e-2, 1e-3, 30_000),
    OptimizerSpec(
        "momentum_heavy_ball",
        lambda learning_rate: optlab.momentum(learning_rate, 0.9, form="heavy_ball"),
        1e-3,
    ),
    OptimizerSpec(
        "momentum_ema",
        lambda learning_rate: optlab.momentum(learning_rate, 0.9, form="ema"),
        1e-2,
    ),
    OptimizerSpec(
        "momentum_velocity",
        lambda learning_rate: optlab.momentum(learning_rate, 0.9, form="velocity"),
        1e-3,
    ),
    OptimizerSpec(
        "nesterov", lambda learning_rate: optlab.nesterov(learning_rate, 0.9), 1e-3, 5e-4
    ),
    OptimizerSpec("adagrad", lambda learning_rate: optlab.adagrad(learning_rate), 1.0, 0.5, 20_000),
    OptimizerSpec(
        "adagrad_torch_eps",
        lambda learning_rate: optlab.adagrad(learning_rate, eps_in_sqrt=False),
        1.0,
        0.5,
        20_000,
    ),
    OptimizerSpec("rmsprop", lambda learning_rate: optlab.rmsprop(learning_rate), 5e-3, 1e-3),
    OptimizerSpec(
        "rmsprop_centered_momentum",
        lambda learning_rate: optlab.rmsprop(
            learning_rate, centered=True, momentum=0.9, eps_in_sqrt=False
        ),
        5e-3,
        1e-3,
    ),
    OptimizerSpec("adam", lambda learning_rate: optlab.adam(learning_rate), 1e-1, 1e-2),
    OptimizerSpec("nadam", lambda learning_rate: optlab.nadam(learning_rate), 1e-2),
    OptimizerSpec(
        "nadam_constant_mu",
        lambda learning_rate: optlab.nadam(learning_rate, momentum_schedule=False),
        1e-2,
    ),
    OptimizerSpec(
        "adamw",
        lambda learning_rate: optlab.adamw(learning_rate, weight_decay=1e-4),
        1e-1,
        1e-2,
        moves_at_rest=True,
    ),
    OptimizerSpec(
        "adamw_paper_scaling",
        lambda learning_rate: optlab.adamw(
            learning_rate, weight_decay=1e-5, decay_scaling="schedule"
        ),
        1e-1,
        1e-2,
        schedule_equivalent=False,
        moves_at_rest=True,
    ),
]

SHELF_SPECS = [
    *specs_like_existing.SPECS,
    *specs_adam_variants.SPECS,
    *specs_sign_family.SPECS,
    *specs_belief_yogi_adadelta.SPECS,
    *specs_rprop_novograd.SPECS,
    *specs_adafactor.SPECS,
    *specs_muon.SPECS,
    *specs_matrix.SPECS,
    *specs_schedule_free_prodigy.SPECS,
    *specs_trust_ratio.SPECS,
    *specs_wrappers.SPECS,
    *specs_sam_sophia.SPECS,
]

SPECS = LECTURE_SPECS + SHELF_SPECS
