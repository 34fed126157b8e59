"""Recipes: the defaults of each (dataset, model) pair; given values win; sources recorded."""

import json

import pytest

from optlab.config import RECIPES, RunConfig, resolve_recipe
from optlab.data import DATASETS
from optlab.models import MODEL_NAMES
from optlab.train.lm import TOKEN_DATASETS


def _cfg(dataset, model, **given):
    cfg = RunConfig()
    cfg.data.dataset, cfg.model.model = dataset, model
    for key, value in given.items():
        section, field = key.split("__")
        setattr(getattr(cfg, section), field, value)
    return cfg


def test_every_built_in_pair_has_a_recipe():
    classifiers = {(d, m) for d in DATASETS for m in MODEL_NAMES if m != "gpt"}
    language_models = {(d, "gpt") for d in TOKEN_DATASETS}  # token data trains the GPT only
    assert set(RECIPES) == classifiers | language_models
    for recipe in RECIPES.values():
        assert recipe.expected and recipe.source
        for key in recipe.values:  # every key names a real field
            section, field, *_ = key.split(".")
            assert field in RunConfig().sections()[section].__dataclass_fields__, key


def test_mnist1d_takes_the_papers_recipe():
    for model in ("mlp", "cnn"):
        cfg, sources = resolve_recipe(_cfg("mnist1d", model))
        assert cfg.optimizer.optimizer == "adam"
        assert cfg.optimizer.learning_rate == 1e-2
        assert cfg.data.batch_size == 100
        assert (cfg.train.steps, cfg.train.epochs) == (6000, None)
        assert cfg.data.val_fraction == 0.0  # the paper trains on all 4,000 examples
        assert sources["optimizer.learning_rate"] == f"recipe mnist1d/{model}"
        assert sources["train.seed"] == "default"
        assert sources["data.dataset"] == "given"
    cfg, sources = resolve_recipe(_cfg("mnist1d", "mlp"))
    assert cfg.model.options["widths"] == [100, 100]
    assert sources["model.options.widths"] == "recipe mnist1d/mlp"


def test_a_given_value_wins_over_the_recipe():
    cfg, sources = resolve_recipe(_cfg("mnist1d", "mlp", data__batch_size=32))
    assert cfg.data.batch_size == 32 and sources["data.batch_size"] == "given"
    assert cfg.optimizer.learning_rate == 1e-2  # the rest still from the recipe
    # a given length replaces the recipe's whole length (steps would override epochs)
    cfg, sources = resolve_recipe(_cfg("mnist1d", "cnn", train__epochs=3))
    assert (cfg.train.epochs, cfg.train.steps) == (3, None)
    assert sources["train.steps"] == "default"
    # a given model option wins, the recipe's others are filled in
    base = _cfg("mnist1d", "mlp")
    base.model.options["widths"] = [8]
    assert resolve_recipe(base)[0].model.options["widths"] == [8]
    # a value given equal to the default still counts as given
    cfg, _ = resolve_recipe(_cfg("mnist1d", "mlp", optimizer__learning_rate=1e-3))
    assert cfg.optimizer.learning_rate == 1e-3


def test_the_recipes_optimizer_arguments_go_only_to_its_own_optimizer():
    cfg, sources = resolve_recipe(_cfg("pystdlib", "gpt"))
    assert (cfg.optimizer.optimizer, cfg.optimizer.args) == ("adamw", {"b2": 0.99})
    assert sources["optimizer.args"] == "recipe pystdlib/gpt"
    # another optimizer: AdamW's b2 is not passed to it; the rest of the recipe still is
    cfg, sources = resolve_recipe(_cfg("pystdlib", "gpt", optimizer__optimizer="sgd"))
    assert cfg.optimizer.args == {} and sources["optimizer.args"] == "default"
    assert cfg.optimizer.clip_norm == 1.0 and cfg.model.options["n_layer"] == 4
    # the recipe's optimizer named again keeps its arguments
    cfg, _ = resolve_recipe(_cfg("pystdlib", "gpt", optimizer__optimizer="adamw"))
    assert cfg.optimizer.args == {"b2": 0.99}


def test_a_run_shorter_than_the_recipes_warm_up_is_refused_with_the_fix():
    from optlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--steps 20: the recipe pystdlib/gpt warms up for "
                       r"100 steps; .* --schedule-arg warmup_steps=2 "):  # fmt: skip
        resolve_recipe(_cfg("pystdlib", "gpt", train__steps=20))
    cfg, _ = resolve_recipe(_cfg("pystdlib", "gpt", train__steps=101))  # longer: the recipe's
    assert cfg.optimizer.schedule_args == {"warmup_steps": 100, "alpha": 0.1}
    given = _cfg("pystdlib", "gpt", train__steps=20)
    given.optimizer.schedule_args = {"warmup_steps": 2, "alpha": 0.1}  # the fix it names
    assert resolve_recipe(given)[0].optimizer.schedule_args["warmup_steps"] == 2
    # another schedule given (the other fix it names): the recipe's warm-up is not passed to
    # it, so the short run is not refused; the recipe's own schedule named again keeps it
    cfg, sources = resolve_recipe(
        _cfg("pystdlib", "gpt", train__steps=20, optimizer__schedule="constant")
    )
    assert cfg.optimizer.schedule_args == {} and sources["optimizer.schedule_args"] == "default"
    assert cfg.optimizer.clip_norm == 1.0 and cfg.optimizer.learning_rate == 1e-3
    with pytest.raises(ConfigError, match=r"^--steps 20: the recipe pystdlib/gpt warms up"):
        resolve_recipe(_cfg("pystdlib", "gpt", train__steps=20, optimizer__schedule="cosine_decay"))


def test_resolving_leaves_the_callers_config_alone():
    cfg = _cfg("mnist1d", "mlp")
    resolve_recipe(cfg)
    assert cfg.data.batch_size == 64 and "widths" not in cfg.model.options


def test_a_config_read_back_counts_every_field_as_given():
    resolved, _ = resolve_recipe(_cfg("mnist1d", "mlp"))
    again = RunConfig.from_dict({**resolved.to_dict(), "sources": {"x": "y"}})
    assert again.to_dict() == resolved.to_dict()
    _, sources = resolve_recipe(again)
    assert sources["data.batch_size"] == "given"


def test_default_job_recipe_changes_nothing():
    cfg, _ = resolve_recipe(RunConfig())
    assert cfg.to_dict() == RunConfig().to_dict()


def test_cli_recipes_lists_every_pair(capsys):
    from optlab.cli import main

    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for recipe in RECIPES.values():
        assert recipe.command() in out
    assert main(["recipes", "--dataset", "nope"]) == 2


def test_run_folder_records_the_sources(tmp_path):
    from optlab.train import train

    cfg = _cfg("mnist1d", "mlp", train__steps=3)
    cfg.out = str(tmp_path / "run")
    train(cfg, progress=False)
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    assert written["data"]["batch_size"] == 100
    assert written["sources"]["data.batch_size"] == "recipe mnist1d/mlp"
    assert written["sources"]["train.steps"] == "given"
    # the same command resumes the folder (the recipe gives the same values again)
    train(cfg, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "at_least"), [("mlp", 0.67), ("cnn", 0.93)])
def test_mnist1d_recipes_reach_the_published_accuracy(tmp_path, model, at_least):
    # The paper: MLP 68%, CNN 94% (Greydanus 2020); measured here 68.7% and 94.8%
    # (deterministic for the seed); asserted: the published figure less one point.
    from optlab.train import train

    cfg = _cfg("mnist1d", model)
    cfg.out = str(tmp_path / model)
    assert train(cfg, progress=False)["test_accuracy"] >= at_least


def test_schedule_and_optimizer_arguments_from_flags_win_over_the_recipe():
    from optlab import cli
    from optlab.cli._flags import config_from_args

    argv = ["train", "--model", "gpt", "--dataset", "pystdlib", "--steps", "20"]
    argv += ["--schedule-arg", "warmup_steps=2", "--opt-arg", "b2=0.95"]
    cfg, sources = resolve_recipe(config_from_args(cli.parser().parse_args(argv)))
    assert cfg.optimizer.schedule_args == {"warmup_steps": 2}  # given: the recipe's yields
    assert cfg.optimizer.args == {"b2": 0.95}
    assert sources["optimizer.schedule_args"] == sources["optimizer.args"] == "given"
