"""Bring your own data: a Dataset object, a plain generator, a resumable iterator."""

import jax
import numpy as np
import pytest

from optlab.config import ConfigError, RunConfig
from optlab.data import load_dataset
from optlab.train import run

DIGITS = load_dataset("digits", seed=0)


def _cfg(out, steps):
    cfg = RunConfig(out=str(out))
    cfg.train.steps, cfg.train.epochs, cfg.train.log_every = steps, None, 10
    cfg.data.batch_size = 32
    cfg.model.options = {"widths": [32]}
    return cfg


class Batches:
    """A resumable stream of digits batches: its position is (epoch, index)."""

    def __init__(self, batch=32):
        self.batch, self.position = batch, 0

    def __iter__(self):
        return self

    def __next__(self):
        n = len(DIGITS.x_train) // self.batch
        epoch, i = divmod(self.position, n)
        order = np.random.default_rng(epoch).permutation(len(DIGITS.x_train))
        take = order[i * self.batch : (i + 1) * self.batch]
        self.position += 1
        return DIGITS.x_train[take], DIGITS.y_train[take]

    def state(self):
        return {"position": self.position}

    def restore(self, state):
        self.position = state["position"]


def test_a_plain_generator_trains(tmp_path):
    def stream():
        rng = np.random.default_rng(0)
        while True:
            take = rng.integers(0, len(DIGITS.x_train), 32)
            yield {"x": DIGITS.x_train[take], "y": DIGITS.y_train[take]}

    result = run(_cfg(tmp_path, 150), train_batches=stream(), progress=False)
    assert result.summary["test_accuracy"] > 0.8


@pytest.mark.slow  # several runs restored and resumed: the full tier
def test_a_resumable_iterator_continues_exactly(tmp_path):
    whole = run(_cfg(tmp_path / "whole", 60), train_batches=Batches(), progress=False)
    run(_cfg(tmp_path / "parts", 30), train_batches=Batches(), progress=False)
    # A fresh iterator: the trainer restores its position from the checkpoint's metadata.
    resumed = run(_cfg(tmp_path / "parts", 60), train_batches=Batches(), progress=False)
    for a, b in zip(jax.tree.leaves(whole.state.params), jax.tree.leaves(resumed.state.params),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_own_dataset_object(tmp_path):
    cfg = _cfg(tmp_path, 40)
    cfg.data.dataset = "not-a-registered-name"  # ignored: the object is used
    result = run(cfg, dataset=load_dataset("spirals", seed=1), progress=False)
    assert result.summary["steps"] == 40 and "test_accuracy" in result.summary


def test_an_iterator_needs_steps(tmp_path):
    cfg = _cfg(tmp_path, 10)
    cfg.train.steps, cfg.train.epochs = None, 2
    with pytest.raises(ConfigError, match=r"train\.steps"):
        run(cfg, train_batches=Batches(), progress=False)
