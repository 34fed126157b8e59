"""``optlab devices`` and ``optlab plan``: their output, and bad input as one line, exit 2."""

import pytest

from optlab.cli import main


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


@pytest.mark.parametrize(
    "argv, words",
    [
        (["devices", "--mesh", "data=3"], "--mesh data=3: 3 devices do not divide the 8"),
        (["devices", "--mesh", "pipe=2"], "--mesh: unknown axis 'pipe'"),
        (["plan", "--mesh", "data=16"], "needs 16 devices but only 8"),
        (["plan", "--strategy", "tp"], "names mesh axis 'model' but the mesh has axes"),
        (["plan", "--model", "rnn"], "--model rnn:"),
        (["plan", "--dataset", "imagenet"], "--dataset imagenet:"),
        (["plan", "--optimizer", "lion"], "--optimizer: unknown 'lion'"),
        (["plan", "--model-arg", "widths"], "--model-arg: expected KEY=VALUE"),
    ],
)
def test_bad_input_exits_2(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("optlab: error: ") and words in err
    assert err.count("\n") == 1
