"""``optlab train``'s own printing: its --help, the early-stopping line, the CPU half-precision
warning (the training itself is tested in tests/train/)."""

import json

import pytest

from optlab.cli import main

TINY = ["--model-arg", "widths=[8]", "--batch-size", "64", "--no-progress"]
WARNING = "optlab: warning: --precision"


def test_help_shows_a_single_percent_sign(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "%%" not in out and ">95% test accuracy" in out


def test_early_stop_is_printed_in_the_summary(tmp_path, capsys):
    # A rate so small that validation accuracy cannot improve after the first evaluation.
    argv = ["train", *TINY, "--out", str(tmp_path), "--steps", "200", "--eval-every", "5",
            "--early-stopping", "2", "--optimizer", "sgd", "--learning-rate", "1e-9"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped_early"] and summary["steps"] == 15  # evaluations at 5, 10, 15
    line = (
        f"stopped early at step {summary['steps']} "
        "(no improvement in val_accuracy for 2 evaluations)"
    )
    assert line in out.splitlines()


def test_a_run_to_its_end_prints_no_early_stop(tmp_path, capsys):
    assert main(["train", *TINY, "--out", str(tmp_path), "--steps", "3"]) == 0
    captured = capsys.readouterr()
    assert "stopped early" not in captured.out and WARNING not in captured.err


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [("bf16", "bfloat16"), pytest.param("fp16", "float16", marks=pytest.mark.slow)],
)
def test_half_precision_on_a_cpu_warns_once(tmp_path, capsys, precision, dtype):
    assert main(["train", *TINY, "--out", str(tmp_path), "--steps", "2",
                 "--precision", precision]) == 0  # fmt: skip
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith(WARNING)]
    assert warnings == [
        f"optlab: warning: --precision {precision}: {dtype} compute on a CPU is several times "
        "slower than fp32 (CPUs lack fast half-precision arithmetic); it pays on GPUs/TPUs. "
        "Use --precision fp32 here."
    ]
