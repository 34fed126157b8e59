"""Where a run's arrays live: the default mesh, and the shardings of the whole state."""

from __future__ import annotations

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from optlab.parallel import make_mesh, opt_state_specs, param_specs, shardings
from optlab.train.state import TrainState


def default_mesh():
    """A one-device mesh with a ``data`` axis: the trainer always runs on a mesh. In a
    multi-process run, ``data=-1``: every process's devices (a one-device mesh would leave
    the other processes without a device of the mesh)."""

    return make_mesh({"data": -1} if jax.process_count() > 1 else None)


def state_shardings(abstract: TrainState, tx, mesh, strategy: str) -> TrainState:
    """Explicit shardings for the whole state: params and optimizer state by the strategy's
    rules (optlab.parallel), everything else (counters, keys, batch statistics) replicated."""

    replicated = NamedSharding(mesh, P())
    p_specs, _ = param_specs(abstract.params, mesh, strategy)
    o_specs = opt_state_specs(tx, abstract.opt_state, abstract.params, p_specs, mesh, strategy)
    everything = jax.tree.map(lambda _: replicated, abstract)
    return everything._replace(params=shardings(p_specs, mesh), opt_state=shardings(o_specs, mesh))
