"""What a new user types: their own optimizer module, a missing extra, a plain optax
transformation. Each mistake is one line and exit 2; each right input works."""

import importlib
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import optax
import pytest

import optlab
from optlab.cli import main
from optlab.config import RunConfig
from optlab.train import run

RUN = ["--dataset", "synthetic_logistic", "--batch-size", "32", "--steps", "4"]
TINY = [*RUN, "--no-progress"]  # train's flags


def plain_sgd(learning_rate):
    """SGD written the usual optax way: update(grads, state, params=None), no **extra."""

    def update(grads, state, params=None):
        return jax.tree.map(lambda g: -learning_rate * g, grads), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def test_a_plain_gradient_transformation_trains_as_optlabs_own(tmp_path):
    results = {}
    for name, factory in (("plain", plain_sgd), ("optlab", optlab.sgd)):
        cfg = RunConfig(out=str(tmp_path / name))
        cfg.data.dataset, cfg.train.steps, cfg.train.epochs = "synthetic_logistic", 5, None
        cfg.optimizer.optimizer, cfg.optimizer.learning_rate = factory, 0.1
        results[name] = run(cfg, progress=False).state.params
    jax.tree.map(np.testing.assert_array_equal, results["plain"], results["optlab"])


def test_lr_find_and_sweep_take_a_plain_transformation(tmp_path):
    from optlab.lab import lr_find, sweep

    cfg = RunConfig(out=str(tmp_path / "s"))
    cfg.data.dataset, cfg.train.steps, cfg.train.epochs = "synthetic_logistic", 3, None
    cfg.optimizer.optimizer = plain_sgd
    assert len(lr_find(cfg, steps=5).learning_rates) >= 1
    assert len(sweep(cfg, {"learning_rate": [0.1, 0.01]}).table) == 2


def test_the_contract_check_names_the_fix():
    from optlab.testing import OptimizerSpec, check_extra_args

    with pytest.raises(AssertionError, match="with_extra_args_support"):
        check_extra_args(OptimizerSpec("plain", plain_sgd, learning_rate=0.1))
    check_extra_args(OptimizerSpec("wrapped", lambda learning_rate: optax.with_extra_args_support(
        plain_sgd(learning_rate)), learning_rate=0.1))  # fmt: skip


@pytest.mark.slow  # a subprocess, in a folder of the user's own
def test_optimizer_module_in_the_current_directory_imports(tmp_path):
    (tmp_path / "my_opts.py").write_text(
        textwrap.dedent(
            """
            import optlab

            def fast_sgd(learning_rate):
                return optlab.sgd(learning_rate)
            """
        )
    )
    env = {**os.environ, "XLA_FLAGS": ""}
    argv = [sys.executable, "-c", "import sys; from optlab.cli import main; sys.exit(main())"]
    ok = subprocess.run(
        [*argv, "train", *TINY, "--optimizer", "my_opts:fast_sgd", "--out", "run"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [*argv, "sweep", *RUN, "--optimizer", "my_opts:nope", "--out", "sweep"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        line for line in bad.stderr.strip().splitlines() if line.startswith("optlab: error:")
    ], bad.stderr
    assert "my_opts:nope" in bad.stderr


def test_cwd_is_searched_after_the_installed_packages(tmp_path, monkeypatch):
    from optlab.cli import parser
    from optlab.cli._flags import config_from_args

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    (tmp_path / "user_opt_mod.py").write_text("import optlab\nopt = optlab.sgd\n")
    config_from_args(parser().parse_args(["train", "--dataset", "digits"]))
    assert str(tmp_path) not in sys.path  # only the --optimizer flag appends it
    cfg = config_from_args(parser().parse_args(["train", "--optimizer", "user_opt_mod:opt"]))
    assert sys.path[-1] == str(tmp_path)  # last: after the installed packages
    assert importlib.import_module("user_opt_mod").opt is optlab.sgd
    assert cfg.optimizer.optimizer == "user_opt_mod:opt"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["sweep", *RUN, "--optimizer", "no_such_module_here:fn"], "cannot import"),
        (["train", *TINY, "--optimizer", "no_such_module_here:fn"], "cannot import"),
        (["train", *TINY, "--schedule", "step_decay"], "needs factor, every"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, words):
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and err[0].startswith("optlab: error:")


def test_missing_extra_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert main(["train", "--dataset", "mnist5k", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'optlab[data]'" in err[0]
