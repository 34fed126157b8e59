"""Contract specs of the wrappers: lookahead, ema_params, skip_spikes (one per distinct form).

The contract runs on plain params, so ``lookahead(like="optax")`` (on
``optax.LookaheadParams``) has no spec; its parity with ``optax.lookahead`` is tested in
test_wrappers.py. The convergence checks read the params the trainer holds: Lookahead's fast
weights (equal to the slow ones at every synchronization), the wrapped optimizer's iterates
for ema_params (the average is the evaluation point). The contract's ``update`` passes no
``value=``, so skip_spikes judges the gradient norm; on these deterministic problems no
step is a spike after the warm-up (a skip would repeat forever: the same params, the same
gradient).
"""

import optlab
from optlab.optimizers._wrappers import ema_params, lookahead, skip_spikes
from optlab.testing import OptimizerSpec

SPECS = [
    OptimizerSpec(
        "lookahead", lambda learning_rate: lookahead(optlab.adam(learning_rate)), 1e-1, 1e-2
    ),
    # Adam restarted every 5 steps makes size-η first steps: at η = 0.1 it circles the
    # parabola's minimum about 0.04 away, hence the smaller rates.
    OptimizerSpec(
        "lookahead_reset",
        lambda learning_rate: lookahead(optlab.adam(learning_rate), 5, 0.5, reset_state=True),
        1e-2,
        2e-3,
        30_000,
    ),
    OptimizerSpec(
        "ema_params",
        lambda learning_rate: ema_params(optlab.sgd(learning_rate)),
        1e-2,
        1e-3,
        30_000,
    ),
    OptimizerSpec(
        "ema_params_torch",
        lambda learning_rate: ema_params(optlab.adam(learning_rate), like="torch"),
        1e-1,
        1e-2,
    ),
    OptimizerSpec(
        "skip_spikes",
        lambda learning_rate: skip_spikes(optlab.adam(learning_rate), metric="grad_norm"),
        1e-1,
        1e-2,
    ),
]


def specs_for(name: str) -> list[OptimizerSpec]:
    """The specs of wrapper ``name`` (its forms ``name``, ``name_*``)."""
    return [s for s in SPECS if s.name == name or s.name.startswith(name + "_")]
