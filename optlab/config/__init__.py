"""The run configuration: documented dataclasses, recipes, and the one factory that turns
them into parts.

Nothing else in optlab reads the config: the CLI fills it from flags (or a JSON/YAML file,
which is data, never executed), ``resolve_recipe`` fills in the defaults of the run's
dataset and model, ``build_optimizer``/``build_schedule`` turn the optimizer section into a
transformation, and ``optlab.train.setup.build_setup`` the rest into data, model and mesh.

Code from data is never run: an import path (``optimizer: "package.module:function"``)
imports, and so runs, that module. ``resolve_optimizer`` is the one place that imports; a
config from a file (``RunConfig.from_file``) or a run folder (``RunConfig.from_run_folder``)
reaches it with an import path only when the caller allowed it (``allow_imports=True``, the
CLI's ``--allow-imports``) or named the same optimizer again. A config built in Python, a
factory passed, and ``--optimizer`` typed on the command line are the user's own word.
"""

from optlab.config._factory import (
    MATRIX_ARGUMENT,
    OPTIMIZERS,
    SCHEDULES,
    assemble,
    build_optimizer,
    build_schedule,
    matrix_dimension_numbers,
    resolve_optimizer,
)
from optlab.config._recipes import RECIPES, Recipe
from optlab.config._recipes import resolve as resolve_recipe
from optlab.config._sections import (
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    TrainConfig,
    optimizer_name,
    read_config_file,
)
from optlab.config._validate import check_imports, is_import_path
from optlab.errors import ConfigError

__all__ = [
    "MATRIX_ARGUMENT",
    "OPTIMIZERS",
    "RECIPES",
    "SCHEDULES",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimizerConfig",
    "Recipe",
    "RunConfig",
    "TrainConfig",
    "assemble",
    "build_optimizer",
    "build_schedule",
    "check_imports",
    "is_import_path",
    "matrix_dimension_numbers",
    "optimizer_name",
    "read_config_file",
    "resolve_optimizer",
    "resolve_recipe",
]
