"""One set of schedule names for Python, the config and the command line."""

import pytest

import optlab
from optlab import config, schedules
from optlab.errors import ConfigError


def test_names_are_the_functions_names():
    for name, fn in optlab.SCHEDULES.items():
        assert getattr(optlab, name) is fn and fn.__name__ == name
        assert schedules.get_schedule(name) is fn


def test_the_older_command_line_names_still_read():
    assert schedules.get_schedule("step") is optlab.step_decay
    assert schedules.get_schedule("cosine") is optlab.cosine_decay


def test_required_arguments_come_from_the_signature():
    assert schedules.required_arguments("step_decay") == ("factor", "every")
    assert schedules.required_arguments("cosine_decay") == ()  # steps: the run's length
    assert schedules.required_arguments("cyclical") == ("max_lr", "step_size")
    assert "step_decay (factor, every)" in schedules.schedules_help()


def test_the_config_takes_the_python_names():
    cfg = config.OptimizerConfig(learning_rate=0.1, schedule="step_decay")
    cfg.schedule_args = {"factor": 0.5, "every": 10}
    rate = config.build_schedule(cfg, total_steps=100)
    assert float(rate(25)) == pytest.approx(0.1 * 0.5**2)
    with pytest.raises(ConfigError, match="needs factor, every"):
        config.build_schedule(config.OptimizerConfig(schedule="step_decay"), 100)
    with pytest.raises(ConfigError, match=r"step_decay \(factor, every\)"):
        config.build_schedule(config.OptimizerConfig(schedule="nope"), 100)


def test_cli_help_lists_each_schedules_required_arguments(capsys):
    from optlab.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "step_decay (factor, every)" in out and "%%" not in out
