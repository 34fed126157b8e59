"""The `optlab` command: the demo main job and its one-line errors."""

import subprocess
import sys

import numpy as np
import pytest

from optlab.cli import main


def test_demo_prints_every_optimizer_path(capsys):
    assert main(["demo", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "∇f = [12.  8.]" in out  # lecture 02: the gradient at (1, 1) is (12, 8)
    # sgd's first step, by hand: (1, 1) − 0.05·(12, 8) = (0.4, 0.6).
    assert "t=1: (+0.400, +0.600)" in out.splitlines()[1]
    from optlab._demo import DEMO_OPTIMIZERS

    assert len(out.splitlines()) == 1 + len(DEMO_OPTIMIZERS)  # the header, one line each


def test_demo_paths_descend():
    from optlab._demo import lecture02_quadratic, run_demo

    paths = run_demo(steps=200)
    for name, path in paths.items():
        assert float(lecture02_quadratic(path[-1])) < 1e-2 * float(lecture02_quadratic(path[0])), (
            name
        )
    np.testing.assert_allclose(paths["momentum_ema"], paths["momentum_heavy_ball"], atol=1e-6)


@pytest.mark.slow  # a subprocess
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--learning-rate", "-1"], "`learning_rate` must be"),
        (["demo", "--optimizer", "lbfgs"], "--optimizer: unknown"),
        (["demo", "--steps", "0"], "--steps must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message):
    proc = subprocess.run(
        [sys.executable, "-m", "optlab", *argv], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_several_pairs_in_one_flag_value_split_before_each_name():
    from optlab.cli._flags import parse_pairs

    got = parse_pairs("--model-arg", ["n_layer=12,n_head=12,d_model=768", "widths=[256,256]"])
    assert got == {"n_layer": 12, "n_head": 12, "d_model": 768, "widths": [256, 256]}
    # a comma not followed by NAME= belongs to the value (a sweep's list of rates)
    assert parse_pairs("--grid", ["learning_rate=0.1,0.01"]) == {"learning_rate": "0.1,0.01"}
