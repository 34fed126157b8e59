"""Parameter groups chosen by regular expressions over parameter paths.

A parameter's *path* is its pytree key path joined by ``"/"``: dict keys and attribute
names as they are, sequence indices as numbers. Flax linen params give
``"params/Dense_0/kernel"``, a hand-built ``{"layers": [{"bias": b}]}`` gives
``"layers/0/bias"``, and a ``flax.nnx`` state (``nnx.state(model, nnx.Param)``, which is
what ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` hands to ``tx``) gives the attribute
path such as ``"layers/0/kernel"`` or ``"linear/bias"``: an ``nnx.Variable`` counts as
one leaf, so its inner ``value`` never appears, whether the optimizer sees the Variables
(at ``init``) or plain arrays (at ``update``). A single array has the path ``""``.
Print ``param_paths(params)`` to see them.

Groups are built on ``optax.partition``; ``path_mask`` gives the ``mask=`` of
``optlab.adamw`` and of the regularizers.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import optax

__all__ = ["DEFAULT_GROUP", "group_labels", "param_groups", "param_paths", "path_mask"]

DEFAULT_GROUP = "default"  # the label of parameters that no pattern matches
_SHOWN_PATHS = 8

Groups = (
    Mapping[str, optax.GradientTransformation] | Sequence[tuple[str, optax.GradientTransformation]]
)


def _is_nnx_variable(x: Any) -> bool:
    # Only when flax.nnx is loaded can a Variable exist; optlab does not import flax here.
    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(x, nnx.Variable)


def _key_name(key: Any) -> str:
    for attr in ("key", "idx", "name"):  # DictKey / FlattenedIndexKey, SequenceKey, GetAttrKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _map_paths(fn: Callable[[str], Any], params: Any) -> Any:
    return jax.tree_util.tree_map_with_path(
        lambda path, _: fn("/".join(_key_name(k) for k in path)), params, is_leaf=_is_nnx_variable
    )


def param_paths(params: Any) -> Any:
    """The path of every parameter, as a pytree of strings like ``params``.

    Keys are joined by ``"/"``: ``{"Dense_0": {"kernel": w}}`` → ``"Dense_0/kernel"``,
    ``{"layers": [{"bias": b}]}`` → ``"layers/0/bias"``; an ``nnx.Variable`` is one leaf.

    Example:
      >>> import jax.numpy as jnp
      >>> from optlab import param_paths
      >>> param_paths({"Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)}})
      {'Dense_0': {'bias': 'Dense_0/bias', 'kernel': 'Dense_0/kernel'}}
    """
    return _map_paths(lambda path: path, params)


def _compile(owner: str, pattern: Any) -> re.Pattern:
    if not isinstance(pattern, str):
        raise ValueError(
            f"{owner}: a pattern must be a regular expression string, got {pattern!r}. "
            "Write e.g. r'bias$' or r'^Dense_0/'."
        )
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(
            f"{owner}: pattern {pattern!r} is not a valid regular expression ({err}). "
            "Escape special characters with re.escape(...) or a raw string."
        ) from err


def _group_items(owner: str, groups: Any, *, need_transforms: bool) -> list[tuple[str, Any]]:
    """``groups`` as a list of (pattern, transformation or None), checked."""
    if isinstance(groups, str):
        raise ValueError(
            f"{owner}: `groups` must be a sequence of (pattern, transformation) pairs, got the "
            f"string {groups!r}. Write [({groups!r}, tx)]."
        )
    items = list(groups.items()) if isinstance(groups, Mapping) else list(groups)
    out = []
    for item in items:
        if isinstance(item, str) and not need_transforms:
            out.append((item, None))
            continue
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise ValueError(
                f"{owner}: each group must be a (pattern, transformation) pair, got {item!r}."
            )
        pattern, tx = item
        if need_transforms and not isinstance(tx, optax.GradientTransformation):
            raise ValueError(
                f"{owner}: the group {pattern!r} needs an optax.GradientTransformation, got {tx!r}."
            )
        out.append((pattern, tx))
    patterns = [p for p, _ in out]
    for pattern in patterns:
        _compile(owner, pattern)
        if patterns.count(pattern) > 1:
            raise ValueError(
                f"{owner}: pattern {pattern!r} is listed twice; the second would get nothing "
                "(first match wins). Merge the two groups."
            )
    if DEFAULT_GROUP in patterns:
        raise ValueError(
            f"{owner}: the label {DEFAULT_GROUP!r} is reserved for unmatched parameters. "
            f"Write the pattern as r'(?:{DEFAULT_GROUP})', which matches the same paths."
        )
    return out


def _labeller(patterns: Sequence[str]) -> Callable[[Any], Any]:
    compiled = [(p, re.compile(p)) for p in patterns]

    def label(path: str) -> str:
        for pattern, regex in compiled:
            if regex.search(path):
                return pattern
        return DEFAULT_GROUP

    return lambda params: _map_paths(label, params)


def group_labels(params: Any, groups: Groups | Sequence[str]) -> Any:
    """Which group each parameter falls in: its pattern, or ``"default"``.

    ``groups`` is what ``param_groups`` takes (pairs or a mapping), or just the patterns.
    The first pattern that ``re.search`` finds in a parameter's path wins.

    Example:
      >>> import jax.numpy as jnp
      >>> from optlab import group_labels
      >>> params = {"Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)}}
      >>> group_labels(params, [r"bias$"])
      {'Dense_0': {'bias': 'bias$', 'kernel': 'default'}}
    """
    items = _group_items("group_labels", groups, need_transforms=False)
    return _labeller([p for p, _ in items])(params)


def param_groups(
    groups: Groups, default: optax.GradientTransformation
) -> optax.GradientTransformationExtraArgs:
    r"""Different transformations for different parameters, chosen by path patterns.

    Each parameter goes to the first group whose ``pattern`` ``re.search`` finds in its path
    (see ``param_paths``); parameters no pattern matches go to ``default``. Each group's
    transformation (an optimizer, a chain with a regularizer, ``optax.set_to_zero()`` to
    freeze) sees only its own parameters and keeps its own state; the result is
    ``optax.partition`` with one label per pattern (``opt_state.inner_states[pattern]``)
    and ``"default"``.

    ``init`` checks that every pattern takes at least one parameter, so a typo (or a
    pattern whose parameters all went to an earlier group) fails loudly, naming the
    pattern and listing some paths, instead of silently doing nothing.

    Like ``torch.optim`` parameter groups (``[{"params": ..., "lr": ...}, ...]``), but
    selected by name, and each group may be a different optimizer.

    Args:
      groups: ``(pattern, transformation)`` pairs (or a dict pattern -> transformation),
        in priority order; ``pattern`` is a regular expression searched in the path.
      default: the transformation of unmatched parameters.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; pass ``params`` to ``update`` when a
      group needs them (weight decay).

    Raises:
      ValueError: at construction for an invalid or duplicated pattern; at ``init`` for
        a pattern that takes no parameter.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> import optlab
      >>> from optlab import param_groups, param_paths
      >>> layer = {"kernel": jnp.ones(2), "bias": jnp.ones(2)}
      >>> params = {"Dense_0": layer, "Dense_1": layer}
      >>> tx = param_groups(
      ...     [(r"bias$", optlab.sgd(0.1)),  # biases: no decay
      ...      (r"^Dense_0/", optlab.adamw(0.01, weight_decay=0.5))],  # a smaller rate
      ...     default=optlab.adamw(0.1, weight_decay=0.5))
      >>> updates, _ = tx.update(params, tx.init(params), params)  # gradients of 1
      >>> for path, u in zip(jax.tree.leaves(param_paths(params)), jax.tree.leaves(updates)):
      ...     print(path, np.round(np.asarray(u, float), 4))
      Dense_0/bias [-0.1 -0.1]
      Dense_0/kernel [-0.015 -0.015]
      Dense_1/bias [-0.1 -0.1]
      Dense_1/kernel [-0.15 -0.15]
    """
    owner = "param_groups"
    items = _group_items(owner, groups, need_transforms=True)
    if not isinstance(default, optax.GradientTransformation):
        raise ValueError(
            f"{owner}: `default` must be an optax.GradientTransformation, got {default!r}."
        )
    patterns = [p for p, _ in items]
    labels_of = _labeller(patterns)
    partition = optax.partition({**dict(items), DEFAULT_GROUP: default}, labels_of)

    def init_fn(params):
        labels = jax.tree.leaves(labels_of(params))
        for pattern in patterns:
            if pattern not in labels:
                paths = jax.tree.leaves(param_paths(params))
                shown = ", ".join(repr(p) for p in paths[:_SHOWN_PATHS])
                more = f", ... ({len(paths)} in all)" if len(paths) > _SHOWN_PATHS else ""
                matches_any = any(re.search(pattern, p) for p in paths)
                why = (
                    "takes no parameter: every path it matches went to an earlier group "
                    "(first match wins)"
                    if matches_any
                    else "matches no parameter path"
                )
                raise ValueError(
                    f"{owner}: pattern {pattern!r} {why}. Paths are: {shown}{more}. "
                    "Fix the pattern (see optlab.param_paths(params)) or drop the group."
                )
        return partition.init(params)

    return optax.GradientTransformationExtraArgs(init_fn, partition.update)


def path_mask(pattern: str, *, exclude: bool = False) -> Callable[[Any], Any]:
    """A mask function ``params -> pytree of bools``: True where ``pattern`` is in the path.

    For the ``mask=`` of ``optlab.adamw``, the regularizers and ``optax.masked``;
    ``exclude=True`` flips it (True where the pattern is *not* found). The mask is not
    checked for matching anything (inside a group it may see only part of the tree):
    check it with ``path_mask(...)(params)`` or ``group_labels``.

    Example:
      >>> import jax.numpy as jnp, optlab
      >>> from optlab import path_mask
      >>> params = {"Dense_0": {"kernel": jnp.ones(2), "bias": jnp.ones(2)}}
      >>> decays = path_mask(r"bias|scale", exclude=True)
      >>> decays(params)
      {'Dense_0': {'bias': False, 'kernel': True}}
      >>> tx = optlab.adamw(1e-3, weight_decay=0.1, mask=decays)
    """
    regex = _compile("path_mask", pattern)
    return lambda params: _map_paths(lambda path: (regex.search(path) is None) == exclude, params)
