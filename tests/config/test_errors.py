"""A mistake names the config field in Python and the flag on the command line."""

import pytest

from optlab.cli import main
from optlab.cli._flags import to_flags
from optlab.config import RunConfig
from optlab.errors import ConfigError
from optlab.train.setup import build_setup


@pytest.mark.parametrize(
    ("section", "field", "value", "named", "flag"),
    [
        ("data", "batch_size", 0, "data.batch_size", "--batch-size"),
        ("optimizer", "learning_rate", -1.0, "optimizer.learning_rate", "--learning-rate"),
        ("optimizer", "schedule", "nope", "optimizer.schedule", "--schedule"),
        ("train", "precision", "fp8", "train.precision", "--precision"),
    ],
)
def test_python_names_the_field_and_the_cli_the_flag(
    tmp_path, capsys, section, field, value, named, flag
):
    cfg = RunConfig(out=str(tmp_path / "run"))
    setattr(getattr(cfg, section), field, value)
    with pytest.raises(ConfigError) as err:
        build_setup(cfg)
    assert named in str(err.value) and "--" not in str(err.value)
    argv = ["train", "--out", str(tmp_path / "run"), flag.replace("_", "-"), str(value)]
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert flag in line and named not in line and len(line.splitlines()) == 1


def test_to_flags_leaves_other_dotted_names():
    assert to_flags("see optlab.train.step and data.batch_size") == (
        "see optlab.train.step and --batch-size"
    )
