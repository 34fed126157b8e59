"""Text from a trained language-model run: ``optlab generate`` and ``optlab.generate``.

The run folder's newest good checkpoint is read (nothing in the folder is changed), its
parameters taken at the optimizer's evaluation point (Schedule-Free's x, the EMA, ...), the
prompt encoded with the run's own tokenizer (``OUT/tokenizer``), and
``optlab.models.sample`` continues it with a key-value cache, compiled once per shape and
deterministic for a seed.
"""

from __future__ import annotations

import pathlib
from typing import Any

from optlab.errors import ConfigError


def generate(
    run: str | pathlib.Path,
    prompt: str = "",
    *,
    max_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = 40,
    seed: int = 0,
    allow_imports: bool = False,
    optimizer: Any = None,
) -> str:
    """The prompt and ``max_tokens`` sampled tokens after it, as text.

    Args:
      run: a run folder of ``optlab train --model gpt``.
      prompt: the text to continue ("" starts from the end-of-document token).
      max_tokens: how many tokens to sample (>= 1).
      temperature: logits are divided by it before sampling; 0 is greedy.
      top_k: sample among the ``top_k`` likeliest tokens only (None: all).
      seed: the sampling's random key.
      allow_imports, optimizer: for a run made with an optimizer given by import path (see
        ``optlab.train.restore_run``).

    Raises:
      ConfigError: not a language-model run, no checkpoint, a bad argument.
    """
    from optlab.data import _tokenizers
    from optlab.models import sample
    from optlab.optimizers import evaluation_point
    from optlab.train import lm
    from optlab.train.loop import restore_run

    if not (isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 1):
        raise ConfigError(f"--max-tokens must be a positive integer, got {max_tokens!r}")
    if not (isinstance(temperature, int | float) and temperature >= 0):
        raise ConfigError(f"--temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None and not (isinstance(top_k, int) and top_k >= 1):
        raise ConfigError(f"--top-k must be a positive integer, got {top_k!r}")
    folder = pathlib.Path(run)
    config = folder / "config.json"
    if not config.is_file():
        raise ConfigError(f"--run: {folder} is not a run folder (no config.json)")
    cfg, setup, state = restore_run(str(folder), allow_imports=allow_imports, optimizer=optimizer)
    if not isinstance(setup.dataset, lm.TokenData):
        raise ConfigError(
            f"--run: {folder} trained a {cfg.model.model} on {cfg.data.dataset}, not a language "
            "model; generate needs a run of --model gpt on token data"
        )
    tokenizer_dir = folder / lm.TOKENIZER_FOLDER
    tokenizer = _tokenizers.load_tokenizer(
        tokenizer_dir if tokenizer_dir.exists() else setup.dataset.splits.path / "tokenizer"
    )
    ids = list(tokenizer.encode(prompt)) if prompt else [setup.dataset.splits.eod_id]
    params = evaluation_point(state.opt_state, state.params)
    out = sample(
        setup.model,
        params,
        ids,
        max_tokens=max_tokens,
        temperature=float(temperature),
        top_k=top_k,
        seed=seed,
    )
    text_ids = [int(t) for t in out]
    if not prompt:
        text_ids = text_ids[1:]  # the end-of-document token it started from
    return tokenizer.decode(text_ids)
