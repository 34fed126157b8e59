"""``create_model``: a model name and options → a checked Flax linen Module."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from optlab import _validation
from optlab.models import initializers
from optlab.models._cnn import CNN
from optlab.models._gpt import GPT, MLPS, POSITIONS
from optlab.models._layers import ACTIVATIONS
from optlab.models._mlp import MLP
from optlab.models._transformer import Transformer

MODEL_NAMES: tuple[str, ...] = ("mlp", "cnn", "transformer", "gpt")

_COMMON = ("activation", "init", "dropout", "dtype", "param_dtype")
_BATCHNORM = ("batchnorm", "batchnorm_momentum")
OPTIONS: dict[str, tuple[str, ...]] = {
    "mlp": ("widths", *_BATCHNORM, *_COMMON),
    "cnn": ("channels", "kernel_size", "stride", "spatial_dims", *_BATCHNORM, *_COMMON),
    "transformer": ("patch", "depth", "heads", "dim", "mlp_dim", *_COMMON),
    "gpt": (
        "n_layer",
        "n_head",
        "d_model",
        "dropout",
        "pos",
        "mlp",
        "tie_embeddings",
        "segment_mask",
        "dtype",
        "param_dtype",
    ),
}
_CLASSES = {"mlp": MLP, "cnn": CNN, "transformer": Transformer, "gpt": GPT}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive_int(owner: str, name: str, value: Any, fix: str) -> int:
    if not (_is_int(value) and value > 0):
        _validation.fail(owner, name, value, "a positive integer", fix)
    return int(value)


def _positive_ints(owner: str, name: str, value: Any, fix: str, *, empty: bool) -> tuple:
    ok = isinstance(value, Sequence) and not isinstance(value, str)
    ok = ok and all(_is_int(v) and v > 0 for v in value) and (empty or len(value) > 0)
    if not ok:
        must = "a tuple of positive integers" + ("" if empty else " (at least one)")
        _validation.fail(owner, name, value, must, fix)
    return tuple(int(v) for v in value)


def _dtype(owner: str, name: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        dtype = jnp.dtype(value)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        _validation.fail(
            owner, name, value, "a floating dtype", 'Use e.g. "float32" or "bfloat16".'
        )
    return dtype


def _check_common(owner: str, options: dict[str, Any]) -> None:
    if "activation" in options:
        _validation.check_choice(owner, "activation", options["activation"], ACTIVATIONS)
    if "init" in options:
        initializers.get(options["init"], owner=owner)
    if "dropout" in options:
        p = options["dropout"]
        if not (_validation.is_concrete_number(p) and 0.0 <= p < 1.0):
            _validation.fail(
                owner, "dropout", p, "a drop probability in [0, 1)", "Use e.g. 0.1, or 0 for none."
            )
    if "batchnorm_momentum" in options:
        m = options["batchnorm_momentum"]
        if not (_validation.is_concrete_number(m) and 0.0 <= m < 1.0):
            _validation.fail(owner, "batchnorm_momentum", m, "in [0, 1)", "Use e.g. 0.9 or 0.99.")
    if "batchnorm" in options and not isinstance(options["batchnorm"], bool):
        _validation.fail(owner, "batchnorm", options["batchnorm"], "True or False", "Use a bool.")
    if "dtype" in options:
        options["dtype"] = _dtype(owner, "dtype", options["dtype"])
    if "param_dtype" in options:
        options["param_dtype"] = _dtype(owner, "param_dtype", options["param_dtype"]) or jnp.float32


def _check_cnn(owner: str, input_shape: tuple[int, ...], options: dict[str, Any]) -> None:
    spatial_dims = options.get("spatial_dims")
    if spatial_dims is None:
        spatial_dims = 1 if len(input_shape) == 1 else 2
    if spatial_dims not in (1, 2) or (len(input_shape), spatial_dims) in ((1, 2), (3, 1)):
        _validation.fail(
            owner,
            "spatial_dims",
            spatial_dims,
            f"1 or 2 and compatible with input_shape {input_shape}",
            "Leave it unset: (L,) is 1-D, (H, W) and (H, W, C) are 2-D; pass spatial_dims=1 "
            "only to read a rank-2 input as (L, C).",
        )
    if len(input_shape) > 3:
        _validation.fail(
            owner, "input_shape", input_shape, "of rank 1, 2 or 3", "Use (L,), (H, W) or (H, W, C)."
        )
    options["spatial_dims"] = spatial_dims
    for name in ("kernel_size", "stride"):
        if name in options:
            _positive_int(owner, name, options[name], "Use e.g. kernel_size=5, stride=2.")
    if "channels" in options:
        options["channels"] = _positive_ints(
            owner, "channels", options["channels"], "Use e.g. (25, 25, 25).", empty=False
        )


def _check_transformer(owner: str, input_shape: tuple[int, ...], options: dict) -> None:
    for name in ("depth", "heads", "dim", "mlp_dim"):
        if name in options:
            _positive_int(owner, name, options[name], "Use e.g. depth=2, heads=4, dim=64.")
    dim, heads = options.get("dim", Transformer.dim), options.get("heads", Transformer.heads)
    if dim % heads:
        _validation.fail(
            owner, "heads", heads, f"a divisor of dim={dim}", "Each head gets dim // heads."
        )
    if len(input_shape) >= 2:
        if options.get("patch") is not None:
            _validation.fail(
                owner,
                "patch",
                options["patch"],
                f"unset for input_shape {input_shape}",
                "Inputs of rank >= 2 use their first axis (an image's rows) as tokens; "
                "`patch` only cuts 1-D inputs.",
            )
        options.pop("patch", None)
        return
    length = input_shape[0]
    patch = options.get("patch")
    patch = Transformer.patch if patch is None else patch
    if not (_is_int(patch) and patch > 0 and length % patch == 0):
        divisors = [d for d in range(1, length + 1) if length % d == 0]
        _validation.fail(
            owner,
            "patch",
            patch,
            f"a divisor of the input length {length}",
            f"Pick one of {divisors}.",
        )
    options["patch"] = int(patch)


def _check_gpt(owner: str, input_shape: tuple[int, ...], options: dict) -> None:
    if len(input_shape) != 1:
        _validation.fail(
            owner,
            "input_shape",
            input_shape,
            "(block_size,)",
            "A language model reads windows of block_size tokens, e.g. input_shape=(64,).",
        )
    for name in ("n_layer", "n_head", "d_model"):
        if name in options:
            _positive_int(owner, name, options[name], "Use e.g. n_layer=4, n_head=4, d_model=128.")
    d_model = options.get("d_model", GPT.d_model)
    n_head = options.get("n_head", GPT.n_head)
    if d_model % n_head:
        _validation.fail(
            owner,
            "n_head",
            n_head,
            f"a divisor of d_model={d_model}",
            f"n_head {n_head} does not divide d_model {d_model}: each head gets "
            "d_model // n_head features.",
        )
    if "pos" in options:
        _validation.check_choice(owner, "pos", options["pos"], POSITIONS)
    if "mlp" in options:
        _validation.check_choice(owner, "mlp", options["mlp"], MLPS)
    if options.get("pos") == "rope" and (d_model // n_head) % 2:
        _validation.fail(
            owner,
            "pos",
            "rope",
            f"used with an even head dimension, not d_model // n_head = {d_model // n_head}",
            "RoPE rotates pairs of features; pick d_model and n_head with an even quotient.",
        )
    for name in ("tie_embeddings", "segment_mask"):
        if name in options and not isinstance(options[name], bool):
            _validation.fail(owner, name, options[name], "True or False", "Use a bool.")
    options["block_size"] = input_shape[0]


def create_model(
    name: str, *, num_classes: int, input_shape: Sequence[int], **options: Any
) -> nn.Module:
    """A Flax linen classifier (or regressor) by name, its options checked.

    Every model is called the same way::

        variables = model.init({"params": key, "dropout": key}, x, train=False)
        logits = model.apply(variables, x, train=False)
        logits, updates = model.apply(
            variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
        )

    ``variables`` holds ``"params"`` and, with ``batchnorm=True``, ``"batch_stats"``. ``x``
    has shape ``(batch, *input_shape)``; the logits are ``(batch, num_classes)`` float32
    whatever the compute ``dtype`` (``num_classes=1`` gives a single regression output).

    Options (all keyword; defaults in brackets):

    - every model: ``activation`` (one of ``ACTIVATIONS``), ``init`` (one of
      ``INITIALIZERS`` or a function ``init(key, shape, dtype)``; kernels only, biases are
      zero; the Module stores it as ``kernel_init`` since ``init`` is linen's method),
      ``dropout`` [0.0] (drop probability p: inverted dropout keeps a unit with probability
      1 − p and scales it by 1/(1 − p) while training, identity at evaluation; lecture 03
      calls the *keep* probability p), ``dtype`` [None: float32 or the input's] compute
      dtype, ``param_dtype`` [float32].
    - ``"mlp"``: ``widths`` [(128, 128)], ``activation`` ["relu"], ``init`` ["he"],
      ``batchnorm`` [False], ``batchnorm_momentum`` [0.9].
    - ``"cnn"``: ``channels`` [(25, 25, 25)], ``kernel_size`` [5], ``stride`` [2],
      ``spatial_dims`` [1 for input (L,), 2 for (H, W) and (H, W, C); pass 1 to read a
      rank-2 input as (L, C)], ``activation`` ["relu"], ``init`` ["he"], ``batchnorm``,
      ``batchnorm_momentum``.
    - ``"transformer"``: ``patch`` [4; 1-D inputs only], ``depth`` [2], ``heads`` [4],
      ``dim`` [64], ``mlp_dim`` [128], ``activation`` ["gelu"], ``init`` ["xavier"].
    - ``"gpt"`` (a language model: ``num_classes`` is the vocabulary, ``input_shape`` is
      ``(block_size,)``, the input is ``(batch, block_size)`` token ids and the logits
      ``(batch, block_size, vocab)``): ``n_layer`` [4], ``n_head`` [4], ``d_model`` [128]
      (nanoGPT's CPU scale), ``dropout`` [0.0], ``pos`` ["learned" or "rope"], ``mlp``
      ["gelu" or "swiglu"], ``tie_embeddings`` [True], ``segment_mask`` [False],
      ``dtype``, ``param_dtype``. GPT-2's initialization is fixed (no ``init``); see
      ``GPT``.

    Batch norm uses the batch's statistics while training and the running averages at
    evaluation (``use_running_average=not train``), updated as r ← m·r + (1 − m)·batch with
    m = ``batchnorm_momentum`` (PyTorch's momentum 0.1 is m = 0.9). Parameter paths are
    listed in the docstrings of ``MLP``, ``CNN`` and ``Transformer``.

    Raises:
      ValueError: naming the option and the valid choices, for an unknown ``name`` or
        option, or a bad value.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = create_model("mlp", num_classes=10, input_shape=(64,), widths=(32,))
      >>> x = jnp.ones((2, 64))
      >>> variables = model.init({"params": jax.random.key(0)}, x, train=False)
      >>> model.apply(variables, x, train=False).shape
      (2, 10)
      >>> jax.tree.map(jnp.shape, variables["params"]["Dense_0"])
      {'bias': (32,), 'kernel': (64, 32)}
    """
    _validation.check_choice("create_model", "name", name, MODEL_NAMES)
    owner = f"create_model({name!r})"
    _positive_int(owner, "num_classes", num_classes, "Use e.g. num_classes=10 (1 for regression).")
    input_shape = _positive_ints(
        owner,
        "input_shape",
        input_shape,
        "Give the shape of one example without the batch axis, e.g. (64,) or (28, 28).",
        empty=False,
    )
    unknown = sorted(set(options) - set(OPTIONS[name]))
    if unknown:
        raise ValueError(
            f"{owner}: unknown option `{unknown[0]}`. Valid options for {name!r}: "
            f"{', '.join(OPTIONS[name])}."
        )
    options = dict(options)
    _check_common(owner, options)
    if name == "mlp" and "widths" in options:
        options["widths"] = _positive_ints(
            owner, "widths", options["widths"], "Use e.g. (128, 128); () is linear.", empty=True
        )
    if name == "cnn":
        _check_cnn(owner, input_shape, options)
    if name == "transformer":
        _check_transformer(owner, input_shape, options)
    if name == "gpt":
        _check_gpt(owner, input_shape, options)
        return GPT(vocab_size=num_classes, **options)
    if "init" in options:  # the Module field is `kernel_init`: `init` is linen's method
        options["kernel_init"] = options.pop("init")
    return _CLASSES[name](num_classes=num_classes, **options)
