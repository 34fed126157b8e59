"""Checkpoints written before Adam's state took optax's names (``AdamState(count, m, v)``,
now ``ScaleByAdamState(count, mu, nu)``) restore migrated, verified by their checksums; a
checkpoint of another state is refused in one line."""

import shutil
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optlab
from optlab.config import RunConfig
from optlab.errors import ConfigError
from optlab.train import checkpoint, loop
from optlab.train.checkpoint import Checkpointer
from optlab.train.state import create_state


class AdamState(NamedTuple):
    """The state as optlab wrote it before the rename (orbax stores its field names)."""

    count: Any
    m: Any
    v: Any


class OtherState(NamedTuple):
    count: Any
    q: Any


PARAMS = {"Dense_0": {"kernel": jnp.arange(6.0).reshape(2, 3), "bias": jnp.ones(3)}}
TX = optlab.adam(1e-3)


def _old(opt_state):
    """``opt_state`` with every ScaleByAdamState written as the old AdamState."""
    return jax.tree.map(
        lambda s: AdamState(*s) if isinstance(s, optlab.ScaleByAdamState) else s,
        opt_state,
        is_leaf=lambda s: isinstance(s, optlab.ScaleByAdamState),
    )


def _old_state(step):
    adam = AdamState(
        jnp.asarray(step, jnp.int32),
        jax.tree.map(lambda p: p + step, PARAMS),
        jax.tree.map(lambda p: p * step, PARAMS),
    )
    return create_state(PARAMS, (adam, TX.init(PARAMS)[1]), seed=0)


def _abstract():
    return jax.eval_shape(lambda: create_state(PARAMS, TX.init(PARAMS), seed=0))


def _save(directory, step, state, meta=None):
    ck = Checkpointer(str(directory), async_save=False)
    assert ck.save(step, state, meta or {"step": step})
    ck.close()


def _restore(directory, **kw):
    ck = Checkpointer(str(directory))
    try:
        return ck.restore_latest_good(_abstract(), **kw)
    finally:
        ck.close()


def test_orbax_keys_a_namedtuple_by_its_field_names(tmp_path):
    _save(tmp_path, 3, _old_state(3))
    ck = Checkpointer(str(tmp_path))
    tree = ck.manager.item_metadata(3)["state"].tree
    ck.close()
    assert set(tree["opt_state"][0]) == {"count", "m", "v"}  # no class name: the fields


def test_an_old_adam_checkpoint_restores_into_mu_and_nu(tmp_path):
    old = _old_state(3)
    _save(tmp_path, 3, old)
    state, meta = _restore(tmp_path)
    adam = state.opt_state[0]
    assert type(adam) is optlab.ScaleByAdamState and meta["step"] == 3
    assert int(adam.count) == 3
    for got, want in ((adam.mu, old.opt_state[0].m), (adam.nu, old.opt_state[0].v)):
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    rest = state._replace(opt_state=None), old._replace(opt_state=None)
    for g, w in zip(*map(jax.tree.leaves, rest), strict=True):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    assert jax.tree.structure(state) == jax.tree.structure(_abstract())


def test_a_migrated_restore_is_verified_by_its_checksums(tmp_path, monkeypatch):
    _save(tmp_path, 1, _old_state(1))
    real = checkpoint.checksums
    monkeypatch.setattr(checkpoint, "checksums", lambda t: real(jax.tree.map(lambda x: x + 1, t)))
    _save(tmp_path, 2, _old_state(2))  # saved with checksums its leaves do not have
    monkeypatch.setattr(checkpoint, "checksums", real)
    reports = []
    state, meta = _restore(tmp_path, report=reports.append)
    assert meta["step"] == 1 and int(state.opt_state[0].count) == 1
    assert len(reports) == 1 and "checkpoint 2 does not match its checksums" in reports[0]


def test_a_checkpoint_of_another_state_is_refused_in_one_line(tmp_path):
    other = OtherState(jnp.asarray(1, jnp.int32), jax.tree.map(jnp.zeros_like, PARAMS))
    _save(tmp_path, 5, create_state(PARAMS, (other, TX.init(PARAMS)[1]), seed=0))
    with pytest.raises(ConfigError) as err:
        _restore(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "checkpoint 5" in message and "another state" in message
    assert "opt_state/0/q" in message  # what it holds that this run's state has not


def _cfg(out, steps):
    cfg = RunConfig(out=str(out))
    cfg.model.options = {"widths": [16]}
    cfg.data.batch_size = 32
    cfg.train.steps, cfg.train.checkpoint_every, cfg.train.eval_every = steps, 10, 100
    return cfg


@pytest.mark.slow  # several runs restored and resumed: the full tier
def test_a_run_folder_written_before_the_rename_resumes_bit_for_bit(tmp_path):
    reference = loop.run(_cfg(tmp_path / "ref", 30), progress=False)
    out = tmp_path / "old"
    loop.run(_cfg(out, 20), progress=False)
    _, setup, _ = loop.restore_run(str(out))
    ck = Checkpointer(str(out / "checkpoints"))
    state, meta = ck.restore_latest_good(setup.abstract_state)
    ck.close()
    shutil.rmtree(out / "checkpoints")  # rewritten as optlab wrote them before the rename
    step = int(meta["step"])
    _save(out / "checkpoints", step, state._replace(opt_state=_old(state.opt_state)), meta)
    ck = Checkpointer(str(out / "checkpoints"))
    stored = ck.manager.item_metadata(step)["state"].tree["opt_state"]
    ck.close()
    names = {
        n for p, _ in jax.tree_util.tree_leaves_with_path(stored) for n in checkpoint._names(p)
    }
    assert {"m", "v"} <= names and not {"mu", "nu"} & names
    resumed = loop.run(_cfg(out, 30), progress=False)
    assert resumed.summary["steps"] == 30
    for got, want in zip(
        jax.tree.leaves(resumed.state), jax.tree.leaves(reference.state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_a_read_only_restore_logs_nothing_and_other_orbax_warnings_still_pass(tmp_path, caplog):
    """Opening a folder read-only (restore_run, ``optlab generate``) makes orbax warn twice
    that nothing will be saved; both are by design and dropped, any other warning passes."""
    import logging

    ck = Checkpointer(str(tmp_path / "ck"), keep_last=2)
    ck.save(1, {"w": jnp.ones(3)}, meta={"step": 1})
    ck.close()
    with caplog.at_level(logging.WARNING):
        ro = Checkpointer(str(tmp_path / "ck"), read_only=True)
        assert ro.steps() == [1]
        ro.close()
    assert not [r for r in caplog.records if "read only" in r.getMessage().lower()]
    record = logging.LogRecord(
        "absl", logging.WARNING, "/x/orbax/checkpoint/manager.py", 1, "other news", None, None
    )
    assert all(f.filter(record) for f in logging.getLogger("absl").filters)
