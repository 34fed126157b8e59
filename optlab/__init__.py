"""optlab: optimizers written exactly as the lectures write them, on JAX and Optax."""

from optlab._minimize import MinimizeResult, minimize
from optlab.optimizers import *  # noqa: F403  (the optimizers are the top-level API)
from optlab.optimizers import __all__ as _optimizer_names

__version__ = "0.1.0"
__all__ = [*_optimizer_names, "MinimizeResult", "__version__", "minimize"]
