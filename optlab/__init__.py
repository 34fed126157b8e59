"""optlab: optimizers written exactly as the lectures write them, on JAX and Optax.

``optlab.<name>`` re-exports the optimizers, the regularizers and clippings, parameter
groups and ``minimize``; ``optlab.schedules`` holds the learning-rate schedules (also
re-exported here) and ``optlab.testing`` the conformance harness.

"Lecture 03" in a docstring or a message names an entry of ``docs/lectures.md``: each
lecture's topics, the papers behind them and where optlab implements them.
"""

from optlab import regularizers, schedules
from optlab._minimize import MinimizeResult, minimize
from optlab._param_groups import group_labels, param_groups, param_paths, path_mask
from optlab.optimizers import *  # noqa: F403  (the optimizers are the top-level API)
from optlab.optimizers import __all__ as _optimizer_names
from optlab.regularizers import *  # noqa: F403
from optlab.regularizers import __all__ as _regularizer_names
from optlab.schedules import *  # noqa: F403
from optlab.schedules import __all__ as _schedule_names

__version__ = "0.1.0"
__all__ = [
    *_optimizer_names,
    *_regularizer_names,
    *_schedule_names,
    "MinimizeResult",
    "__version__",
    "group_labels",
    "minimize",
    "param_groups",
    "param_paths",
    "path_mask",
    "regularizers",
    "schedules",
]
