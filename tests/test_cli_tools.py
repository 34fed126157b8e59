"""`optlab summary`: the model `optlab train` would build, as lecture 04's table."""

import json

import pytest

from optlab.cli import main
from optlab.config import RunConfig


def _total_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("input "))


def test_default_mlp_on_digits(capsys):
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    # MLP's default widths are (128, 128); digits' (8, 8, 1) images are flattened to 64.
    params = (64 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10)
    flops = 2 * (64 * 128 + 128 * 128 + 128 * 10)  # a multiply-add = 2 FLOPs, batch 1
    assert params == 26_122
    assert _total_line(out) == f"input (1, 8, 8, 1): {params:,} parameters, {flops:,} FLOPs"
    assert out.startswith("mlp on digits (10 classes)")
    for layer, shape in (("Dense_0", "(1, 128)"), ("Dense_1", "(1, 128)"), ("Dense_2", "(1, 10)")):
        assert any(line.startswith(f"{layer}  Dense  {shape}") for line in out.splitlines())


def test_model_args_batch_and_xla(capsys):
    argv = ["summary", "--dataset", "mnist1d", "--model-arg", "widths=[16]", "--batch", "3"]
    assert main([*argv, "--xla"]) == 0
    out = capsys.readouterr().out
    params = 40 * 16 + 16 + 16 * 10 + 10
    flops = 3 * 2 * (40 * 16 + 16 * 10)
    assert _total_line(out) == f"input (3, 40): {params:,} parameters, {flops:,} FLOPs"
    assert "XLA cost analysis" in out


def test_summary_of_a_run_folder(tmp_path, capsys):
    cfg = RunConfig(out=str(tmp_path))
    cfg.model.options["widths"] = [8]
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    assert main(["summary", "--run", str(tmp_path)]) == 0
    params = 64 * 8 + 8 + 8 * 10 + 10
    assert f"{params:,} parameters" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "--model", "resnet"], "--model resnet: "),
        (["summary", "--model-arg", "widths"], "--model-arg: expected KEY=VALUE"),
        (["summary", "--run", "/nonexistent/run"], "--run: /nonexistent/run holds no run"),
        (["summary", "--run", ".", "--model", "cnn"], "--run: cannot be combined with --model"),
        (["summary", "--batch", "0"], "--batch must be a positive integer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"optlab: error: {message}"), err
    assert len(err.strip().splitlines()) == 1, err
