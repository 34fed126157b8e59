"""``--remat``: which models rematerialize their blocks, and the model that does."""

from __future__ import annotations

from typing import Any

from optlab.errors import ConfigError
from optlab.models import GPT, LayeredModel, Transformer


def rematerialized(model: Any, what: str) -> Any:
    """``--remat``: the model with each layer (transformer, GPT: each block)
    rematerialized in the backward pass; the parameter paths stay
    (``optlab.models.LayeredModel``)."""
    if not isinstance(model, LayeredModel | Transformer | GPT):
        raise ConfigError(
            f"train.remat: {what} has no rematerialized layers (optlab's mlp, cnn, "
            "transformer and gpt have); drop train.remat, or wrap your model's blocks in "
            "flax.linen.remat yourself"
        )
    return model.clone(remat=True)
