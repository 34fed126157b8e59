"""Abstract parameters of optlab's models, for the sharding tests; the shared layout runs."""

import jax
import jax.numpy as jnp
import pytest

from optlab.models import create_model


def abstract_params(name, input_shape, **options):
    """``jax.ShapeDtypeStruct`` params of ``create_model(name, ...)`` with 10 classes."""
    model = create_model(name, num_classes=10, input_shape=input_shape, **options)
    sample = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    init = lambda x: model.init({"params": jax.random.key(0)}, x, train=False)  # noqa: E731
    return jax.eval_shape(init, sample)["params"]


@pytest.fixture
def params_of():
    return abstract_params


@pytest.fixture(scope="session")
def layout_runs(tmp_path_factory):
    """20 steps of the MLP and the CNN under each layout (tests/parallel/_layouts.py),
    each trained on first use and shared by the tests of this folder."""
    from tests.parallel._layouts import Runs

    return Runs(tmp_path_factory.mktemp("layouts"))
