"""Which parameters a matrix optimizer (Muon) treats as matrices, for the trainer: the
built-in models' ``matrix_axes``, and the one line a run prints about the assignment."""

from __future__ import annotations

import inspect
import sys
from typing import Any

import jax

from optlab import config as config_lib
from optlab._param_groups import param_paths
from optlab.config import OptimizerConfig
from optlab.models import matrix_axes
from optlab.optimizers import muon, muon_labels


def model_matrices(cfg: OptimizerConfig, model: Any, given_variables: Any, sample: Any) -> Any:
    """The built-in model's ``matrix_axes`` tree when the optimizer takes
    ``muon_weight_dimension_numbers`` (None otherwise, or for a model of your own); for Muon,
    prints which parameters it updates and which go to AdamW (process 0)."""
    factory = config_lib.resolve_optimizer(cfg.optimizer)
    if not _takes_matrices(factory):
        return None
    matrices = None
    if given_variables is not None:
        params = given_variables["params"]
    else:
        key = jax.random.PRNGKey(0)
        params = jax.eval_shape(
            lambda: model.init({"params": key, "dropout": key}, sample, train=False)
        )["params"]
        matrices = matrix_axes(model, params)
    if factory is muon and jax.process_index() == 0:
        args = dict(cfg.args)
        dims = args.get(config_lib.MATRIX_ARGUMENT)
        if dims is None and matrices is not None:
            dims = config_lib.matrix_dimension_numbers(matrices)
        labels = muon_labels(
            params, dims, adam_paths=args.get("adam_paths", ()), like=args.get("like")
        )
        print(_assignment(params, labels), file=sys.stderr)
    return matrices


def _takes_matrices(factory: Any) -> bool:
    """Whether the optimizer is told which parameters are matrices (Muon)."""
    try:
        return config_lib.MATRIX_ARGUMENT in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def _assignment(params: Any, labels: Any, shown: int = 6) -> str:
    """One line: which parameters Muon updates and which go to AdamW."""
    groups: dict[str, list[str]] = {"muon": [], "adam": []}
    for path, leaf, label in zip(
        jax.tree.leaves(param_paths(params)),
        jax.tree.leaves(params),
        jax.tree.leaves(labels),
        strict=True,
    ):
        groups[label].append(f"{path} {'x'.join(map(str, leaf.shape)) or 'scalar'}")

    def listed(items):
        more = f", ... ({len(items)} in all)" if len(items) > shown else ""
        return ", ".join(items[:shown]) + more if items else "none"

    return (
        f"optlab: muon on {len(groups['muon'])} matrices: {listed(groups['muon'])}; "
        f"adamw on {len(groups['adam'])}: {listed(groups['adam'])} "
        "(change with optimizer.args adam_paths or muon_weight_dimension_numbers)"
    )
