"""``optlab devices`` and ``optlab plan``: their output, and bad input as one line, exit 2."""

import os
import subprocess
import sys

import jax
import pytest

import optlab
from optlab import config as config_lib
from optlab.cli import main
from optlab.cli.plan import abstract_params
from optlab.parallel import make_mesh, plan


def test_devices(capsys):
    assert main(["devices", "--mesh", "data=-1,model=2"]) == 0
    out = capsys.readouterr().out
    assert "cpu (8 devices: 8 × cpu)" in out and "process:   0 of 1" in out
    assert "mesh:      data=4,model=2 (8 devices, axis types Auto)" in out
    assert main(["devices"]) == 0
    assert "mesh:      data=1 (1 device," in capsys.readouterr().out


def test_plan_cnn(capsys):
    argv = ["plan", "--model", "cnn", "--dataset", "mnist1d", "--mesh", "data=4,model=2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("cnn on mnist1d, adam\nper-device bytes on mesh data=4,model=2")
    rows = [line.split()[0] for line in out.splitlines()[3:9]]
    assert rows == ["dp", "fsdp", "tp", "dp+tp", "zero1", "krizhevsky"]
    assert "Conv_2/bias (25,): wanted P('model',), dim 0 of size 25 is not divisible" in out


def test_plan_strategies_and_data_only_mesh(capsys):
    argv = ["plan", "--model", "transformer", "--dataset", "mnist1d", "--model-arg", "dim=32"]
    assert main([*argv, "--mesh", "data=8", "--strategy", "fsdp", "--optimizer", "sgd"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("transformer on mnist1d, sgd\n")
    assert [line.split()[0] for line in out.splitlines()[3:]][:1] == ["fsdp"]
    assert "head/bias (10,)" in out
    assert main(["plan", "--mesh", "data=8"]) == 0  # tp and friends need a model axis
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[3:6]] == ["dp", "fsdp", "zero1"]
    assert "tp, dp+tp, krizhevsky need a model axis" in out


@pytest.mark.slow  # a subprocess
def test_plan_a_larger_mesh_than_the_machine_has():
    # The README's "check first" example on a one-device machine: the bytes it prints are
    # those of the same plan on a real 8-device mesh (this process has 8 simulated devices).
    env = {**os.environ, "XLA_FLAGS": ""}
    argv = [sys.executable, "-m", "optlab", "plan", "--mesh", "data=4,model=2"]
    one = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    real = plan(abstract_params(config_lib.RunConfig()), optlab.adam(1e-3),
                make_mesh("data=4,model=2"))  # fmt: skip
    assert jax.device_count() == 8 and real.mesh == {"data": 4, "model": 2}
    assert one.stdout == f"mlp on digits, adam\n{real}\n"
    assert "per-device bytes on mesh data=4,model=2 (8 devices)" in one.stdout
    # --devices N fills in -1 for a machine of N devices, 64 here.
    sixty_four = subprocess.run([*argv[:-1], "data=-1,model=2", "--devices", "64"], env=env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
    assert sixty_four.returncode == 0, sixty_four.stderr
    assert "per-device bytes on mesh data=32,model=2 (64 devices)" in sixty_four.stdout


def test_plan_devices_on_this_machine(capsys):
    assert main(["plan", "--mesh", "data=-1,model=2", "--devices", "32"]) == 0
    assert "mesh data=16,model=2 (32 devices)" in capsys.readouterr().out
    assert main(["plan", "--mesh", "data=-1"]) == 0  # -1: this machine's 8 devices
    assert "mesh data=8 (8 devices)" in capsys.readouterr().out
    assert main(["plan", "--mesh", "data=16"]) == 0  # larger than the machine
    assert "mesh data=16 (16 devices)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["devices", "--mesh", "data=3"], "--mesh data=3: 3 devices do not divide the 8"),
        (["devices", "--mesh", "pipe=2"], "--mesh: unknown axis 'pipe'"),
        (["plan", "--mesh", "data=16", "--devices", "8"], "needs 16 devices but only 8"),
        (["plan", "--mesh", "data=-1,model=3"], "set --devices N to plan for N"),
        (["plan", "--devices", "0"], "--devices: the device count must be a positive"),
        (["plan", "--strategy", "tp"], "names mesh axis 'model' but the mesh has axes"),
        (["plan", "--model", "rnn"], "--model rnn:"),
        (["plan", "--dataset", "imagenet"], "--dataset imagenet:"),
        (["plan", "--optimizer", "lamb2"], "--optimizer: unknown 'lamb2'"),
        (["plan", "--model-arg", "widths"], "--model-arg: expected KEY=VALUE"),
    ],
)
def test_bad_input_exits_2(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("optlab: error: ") and words in err
    assert err.count("\n") == 1
