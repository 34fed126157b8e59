"""The trainer: ``train(config)`` runs (or resumes) a whole run; the pieces are public too.

Five lines::

    from optlab.config import RunConfig
    from optlab.train import train

    cfg = RunConfig(out="runs/nesterov")
    cfg.optimizer.optimizer, cfg.optimizer.learning_rate = "nesterov", 0.05
    print(train(cfg)["test_accuracy"])
"""

from optlab.train.generate import generate
from optlab.train.loop import NonFiniteError, RunResult, evaluate, restore_run, run, train
from optlab.train.spec import StepSpec
from optlab.train.state import TrainState, create_state
from optlab.train.step import make_eval_step, make_train_step

__all__ = [
    "NonFiniteError",
    "RunResult",
    "StepSpec",
    "TrainState",
    "create_state",
    "evaluate",
    "generate",
    "make_eval_step",
    "make_train_step",
    "restore_run",
    "run",
    "train",
]
