"""wrap_iterator: user batches in the dict form, padding, passes, and forwarded positions."""

import itertools
import json

import numpy as np
import pytest

from optlab.data import BatchIterator, wrap_iterator


def pairs(sizes=(4, 4, 3)):
    start = np.cumsum((0, *sizes))
    return [
        (np.arange(a, b, dtype=np.float32)[:, None], np.arange(a, b))
        for a, b in itertools.pairwise(start)
    ]


def test_pairs_become_dicts_with_a_mask_of_ones():
    b = next(wrap_iterator(pairs()))
    assert set(b) == {"x", "y", "mask"} and b["x"].shape == (4, 1)
    np.testing.assert_array_equal(b["mask"], np.ones(4, np.float32))


def test_dict_triple_and_alias_batches():
    source = [
        {"x": np.zeros((2, 3)), "y": np.ones(2), "mask": np.array([1.0, 0.0])},
        {"image": np.zeros((2, 3)), "label": np.ones(2)},
        (np.zeros((2, 3)), np.ones(2), np.array([0.0, 1.0])),
    ]
    masks = [b["mask"].tolist() for b in wrap_iterator(iter(source))]
    assert masks == [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def test_reiterable_source_repeats_and_counts_passes():
    it = wrap_iterator(pairs())
    ys = [next(it)["y"][0] for _ in range(7)]
    assert ys == [0, 4, 8, 0, 4, 8, 0] and it.epoch == 2 and it.step == 7


def test_iterator_source_ends():
    it = wrap_iterator(iter(pairs()))
    assert len(list(it)) == 3


def test_batch_size_pads_the_last_batch():
    it = wrap_iterator(pairs(), batch_size=4)
    last = [next(it) for _ in range(3)][-1]
    assert last["x"].shape == (4, 1)
    np.testing.assert_array_equal(last["mask"], [1, 1, 1, 0])
    np.testing.assert_array_equal(last["y"][:3], [8, 9, 10])


class GrainLike:
    """An iterator with grain's get_state() -> bytes / set_state(bytes) protocol."""

    def __init__(self):
        self.position = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.position += 1
        return np.full((2, 1), self.position), np.full(2, self.position)

    def get_state(self):
        return json.dumps({"position": self.position}).encode()

    def set_state(self, state):
        self.position = json.loads(state)["position"]


class TorchdataLike:
    """A re-iterable loader with torchdata's state_dict() / load_state_dict()."""

    def __init__(self):
        self.inner = GrainLike()

    def __iter__(self):
        return self.inner

    def state_dict(self):
        return {"position": self.inner.position}

    def load_state_dict(self, state):
        self.inner.position = state["position"]


@pytest.mark.parametrize(
    "factory",
    [
        GrainLike,
        TorchdataLike,
        lambda: BatchIterator(np.arange(10.0), np.arange(10), batch_size=3, seed=1),
    ],
)
def test_state_is_forwarded_and_restores_the_position(factory):
    it = wrap_iterator(factory())
    assert it.checkpointable
    for _ in range(5):
        next(it)
    state = json.loads(json.dumps(it.state()))  # bytes are stored as base64 text
    expected = [next(it) for _ in range(4)]
    resumed = wrap_iterator(factory())
    resumed.restore(state)
    assert resumed.step == 5
    for got, want in zip([next(resumed) for _ in range(4)], expected, strict=True):
        for key in ("x", "y", "mask"):
            np.testing.assert_array_equal(got[key], want[key])


def test_without_state_the_position_is_not_checkpointed():
    it = wrap_iterator(pairs())
    next(it)
    state = it.state()
    assert state == {"step": 1, "epoch": 0, "checkpointable": False}
    assert not it.checkpointable
    with pytest.warns(UserWarning, match="not checkpointed"):
        wrap_iterator(pairs()).restore(state)


def test_torch_tensors(torch):
    loader = [(torch.ones(3, 2), torch.zeros(3, dtype=torch.long))]
    b = next(wrap_iterator(loader))
    assert isinstance(b["x"], np.ndarray) and b["x"].shape == (3, 2) and b["y"].dtype == np.int64


@pytest.mark.parametrize(
    ("source", "kwargs", "match"),
    [
        ([np.zeros(3)], {}, r"must be \(x, y\)"),
        ([{"inputs": np.zeros(2)}], {}, "needs keys 'x' and 'y'"),
        ([(np.zeros(3), np.zeros(2))], {}, "differ in length"),
        ([(np.zeros(5), np.zeros(5))], {"batch_size": 4}, "does not fit `batch_size`=4"),
        ([], {"batch_size": 0}, "`batch_size` must be >= 1"),
    ],
)
def test_bad_batches(source, kwargs, match):
    with pytest.raises(ValueError, match=match):
        next(wrap_iterator(source, **kwargs))
