"""The run folder's PNG curves leave matplotlib's global state alone (notebooks)."""

import matplotlib
import pytest

from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.train import artifacts, loop

RECORDS = [
    {"step": 1, "train_loss": 2.0, "train_accuracy": 0.2},
    {"step": 2, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.2, "val_accuracy": 0.4},
]


@pytest.fixture
def svg_backend():
    """A non-Agg backend, as a notebook's inline one is; restored afterwards."""
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.close("all")
    matplotlib.use("svg")
    yield plt
    plt.close("all")
    matplotlib.use(before)


def test_plot_curves_keeps_the_backend_and_opens_no_pyplot_figure(tmp_path, svg_backend):
    plt = svg_backend
    written = artifacts.plot_curves(RECORDS, tmp_path)
    assert [p.name for p in written] == ["loss.png", "accuracy.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    assert matplotlib.get_backend() == "svg"
    assert plt.get_fignums() == []


def test_training_keeps_the_backend(tmp_path, svg_backend):
    plt = svg_backend
    flags = ["train", "--model-arg", "widths=[8]", "--steps", "4", "--log-every", "2",
             "--eval-every", "2", "--no-progress", "--out", str(tmp_path)]  # fmt: skip
    loop.run(config_from_args(cli.parser().parse_args(flags)), progress=False)
    assert (tmp_path / "loss.png").exists() and (tmp_path / "accuracy.png").exists()
    assert matplotlib.get_backend() == "svg"
    assert plt.get_fignums() == []
