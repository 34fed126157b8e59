"""Device meshes, sharding rules as data, strategies and memory plans.

The trainer always runs on a mesh (``make_mesh()``: one device). ``param_specs`` lays the
parameters out by a strategy (``STRATEGIES``) and rules over their paths
(``DEFAULT_TP_RULES``); ``opt_state_specs`` gives the optimizer state the matching layout;
``shardings`` turns specs into ``NamedSharding``; ``plan`` prints what each strategy costs
per device before anything is compiled, and ``activation_plan`` a language model's
activations per remat setting. Mesh axes are ``Auto``: the model code never
carries sharding annotations. ``PMAP_AXIS`` names the device axis of ``--parallel pmap``
(a batch norm synchronized over devices uses it as its ``axis_name``).

Example:
  >>> import jax, jax.numpy as jnp, optlab
  >>> from optlab.parallel import make_mesh, opt_state_specs, param_specs, shardings
  >>> mesh = make_mesh()  # one device; make_mesh("data=4,model=2") on eight
  >>> params = {"Dense_0": {"kernel": jnp.ones((4, 8)), "bias": jnp.zeros(8)}}
  >>> specs, fallbacks = param_specs(params, mesh, "fsdp")
  >>> params = jax.device_put(params, shardings(specs, mesh))
  >>> params["Dense_0"]["kernel"].sharding.spec
  P(None, 'data')
"""

from optlab.parallel._distributed import DistributedError, initialize, launch_local
from optlab.parallel._mesh import (
    AXES,
    PMAP_AXIS,
    abstract_mesh,
    describe_devices,
    make_mesh,
    mesh_str,
)
from optlab.parallel._plan import (
    ACTIVATIONS_NOTE,
    GRADIENTS_NOTE,
    ActivationPlan,
    ActivationRow,
    Plan,
    StrategyPlan,
    activation_plan,
    device_bytes,
    plan,
)
from optlab.parallel._rules import (
    CONV_PATTERN,
    DEFAULT_TP_RULES,
    STRATEGIES,
    Fallback,
    Rule,
    opt_state_specs,
    param_specs,
    shardings,
)

__all__ = [
    "ACTIVATIONS_NOTE",
    "AXES",
    "CONV_PATTERN",
    "DEFAULT_TP_RULES",
    "GRADIENTS_NOTE",
    "PMAP_AXIS",
    "STRATEGIES",
    "ActivationPlan",
    "ActivationRow",
    "DistributedError",
    "Fallback",
    "Plan",
    "Rule",
    "StrategyPlan",
    "abstract_mesh",
    "activation_plan",
    "describe_devices",
    "device_bytes",
    "initialize",
    "launch_local",
    "make_mesh",
    "mesh_str",
    "opt_state_specs",
    "param_specs",
    "plan",
    "shardings",
]
