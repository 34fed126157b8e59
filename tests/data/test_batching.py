"""BatchIterator: fixed shapes and masks, epochs, modes, resume, process shards, growing K."""

import itertools
import json

import numpy as np
import pytest

from optlab.data import BatchIterator

N = 10


def make(n=N, **kwargs):
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # row i is i
    y = np.arange(n, dtype=np.int32)
    kwargs.setdefault("seed", 0)
    return BatchIterator(x, y, **kwargs)


def take(it, steps):
    return [next(it) for _ in range(steps)]


def real_rows(batch):
    return batch["y"][batch["mask"] == 1].tolist()


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert u.keys() == v.keys() == {"x", "y", "mask"}
        for key in u:
            np.testing.assert_array_equal(u[key], v[key])


@pytest.mark.parametrize(("batch_size", "steps"), [(1, 10), (3, 4), (4, 3), (5, 2), (10, 1)])
def test_fixed_shape_and_mask_sum_over_an_epoch_is_n(batch_size, steps):
    it = make(batch_size=batch_size)
    assert it.steps_per_epoch == steps
    for epoch in range(3):
        assert it.epoch == epoch
        batches = take(it, steps)
        for b in batches:
            assert b["x"].shape == (batch_size, 3) and b["x"].dtype == np.float32
            assert b["y"].shape == (batch_size,) and b["mask"].shape == (batch_size,)
            assert b["mask"].dtype == np.float32
            np.testing.assert_array_equal(b["x"][:, 0], b["y"])  # rows stay paired
        assert sum(b["mask"].sum() for b in batches) == N
        seen = sorted(itertools.chain.from_iterable(real_rows(b) for b in batches))
        assert seen == list(range(N))  # every example exactly once per epoch
    assert it.epoch == 3 and it.step == 3 * steps


def test_padding_repeats_real_rows_and_masks_them():
    last = take(make(batch_size=4), 3)[-1]
    np.testing.assert_array_equal(last["mask"], [1, 1, 0, 0])
    assert set(last["y"][2:]) <= set(range(N))


def test_shuffle_is_a_function_of_seed_and_epoch():
    order = lambda it: [r for b in take(it, 3) for r in real_rows(b)]  # noqa: E731
    a, b = make(batch_size=4, seed=7), make(batch_size=4, seed=7)
    assert order(a) == order(b)
    first = order(make(batch_size=4, seed=7))
    second_epoch = order(a)
    assert first != second_epoch  # a new permutation each epoch
    expected = np.random.default_rng([7, 0]).permutation(N).tolist()
    assert first == expected
    assert order(make(batch_size=4, shuffle=False)) == list(range(N))


def test_drop_remainder():
    it = make(batch_size=4, drop_remainder=True)
    assert it.steps_per_epoch == 2
    batches = take(it, 2)
    assert it.epoch == 1 and all(b["mask"].sum() == 4 for b in batches)
    assert len({r for b in batches for r in real_rows(b)}) == 8


def test_full_batch_mode():
    it = make(mode="full", batch_size=None)
    assert it.steps_per_epoch == 1 and it.batch_size == N
    for epoch in range(2):
        b = next(it)
        assert it.epoch == epoch + 1
        assert b["y"].tolist() == list(range(N)) and b["mask"].sum() == N
    big = make(mode="full", batch_size=10_000)  # batch_size is ignored in full mode
    assert big.batch_size == N


def test_online_mode_one_example_per_step():
    it = make(mode="online", batch_size=None)
    assert it.steps_per_epoch == N and it.batch_size == 1
    batches = take(it, N)
    assert all(b["x"].shape == (1, 3) for b in batches)
    assert sorted(b["y"][0] for b in batches) == list(range(N)) and it.epoch == 1


@pytest.mark.parametrize("mode", ["minibatch", "online"])
def test_sampling_with_replacement(mode):
    k = 4 if mode == "minibatch" else 1
    it = make(n=50, batch_size=k, mode=mode, replacement=True, seed=3)
    batches = take(it, 1000 // k)
    assert all(b["mask"].sum() == k for b in batches)  # no padding: K draws every step
    draws = np.concatenate([b["y"] for b in batches])
    first_epoch = np.concatenate([b["y"] for b in batches[: it.steps_per_epoch]])
    assert len(np.unique(first_epoch)) < len(first_epoch)  # duplicates within an epoch
    assert np.bincount(draws, minlength=50).min() > 0  # uniform over all examples
    expected = np.random.default_rng([3, 0, 0]).integers(0, 50, k)
    np.testing.assert_array_equal(batches[0]["y"], expected)  # from (seed, epoch, step)
    again = take(make(n=50, batch_size=k, mode=mode, replacement=True, seed=3), 1000 // k)
    assert_same_batches(batches, again)


RESUME_CASES = {
    "minibatch": {"batch_size": 4},
    "drop_remainder": {"batch_size": 4, "drop_remainder": True},
    "replacement": {"batch_size": 4, "replacement": True},
    "online": {"mode": "online"},
    "online_replacement": {"mode": "online", "replacement": True},
    "full": {"mode": "full"},
    "growing": {"batch_size": 2, "batch_size_schedule": [(4, 4), (9, 6)]},
    "two_processes": {"batch_size": 4, "process_index": 1, "process_count": 2},
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
@pytest.mark.parametrize("stop", [0, 1, 2, 3, 5, 10, 11])  # 2, 3 and 10 sit at epoch boundaries
def test_resume_gives_identical_batches(case, stop):
    kwargs = RESUME_CASES[case]
    reference = take(make(seed=5, **kwargs), 25)
    first = make(seed=5, **kwargs)
    take(first, stop)
    state = json.loads(json.dumps(first.state()))  # JSON round trip, as a checkpoint would
    assert state["step"] == stop
    resumed = make(seed=5, **kwargs)
    resumed.restore(state)
    assert resumed.state() == first.state()
    assert_same_batches(take(resumed, 25 - stop), reference[stop:])


def test_state_records_epoch_index_step_batch_size_phase():
    it = make(batch_size=4)
    take(it, 2)
    state = it.state()
    assert state == {
        "epoch": 0,
        "index": 8,
        "step": 2,
        "batch_size": 4,
        "phase": 0,
        "num_examples": N,
        "seed": 0,
        "mode": "minibatch",
    }
    assert all(type(v) in (int, str) for v in state.values())


def test_process_shards_partition_the_global_batch():
    kwargs = {"n": 37, "batch_size": 8, "seed": 2, "batch_size_schedule": [(5, 16)]}
    whole = take(make(**kwargs), 12)
    shards = [take(make(process_index=p, process_count=4, **kwargs), 12) for p in range(4)]
    for step, batch in enumerate(whole):
        parts = [shards[p][step] for p in range(4)]
        assert all(len(part["y"]) == len(batch["y"]) // 4 for part in parts)
        for key in ("x", "y", "mask"):  # contiguous blocks, in process order
            np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), batch[key])


def test_full_batch_is_padded_to_a_multiple_of_process_count():
    parts = [next(make(mode="full", process_index=p, process_count=4)) for p in range(4)]
    assert all(p["y"].shape == (3,) for p in parts)  # 10 rows padded to 12
    assert sum(p["mask"].sum() for p in parts) == N


def test_growing_batch_size():
    it = make(batch_size=2, batch_size_schedule=[(3, 4)])
    assert it.phases == ((0, 2), (3, 4))
    phases, batches = [], []
    for _ in range(5):
        phases.append(it.state()["phase"])
        batches.append(next(it))
    assert [len(b["y"]) for b in batches] == [2, 2, 2, 4, 4] and phases == [0, 0, 0, 1, 1]
    assert sorted(r for b in batches[:4] for r in real_rows(b)) == list(range(N))
    # Epoch 0 is 2 + 2 + 2 + 4 = 10 examples: the epoch continued when K changed.
    assert it.epoch == 1 and it.steps_per_epoch == 3 and it.batch_size == 4
    schedule_from_zero = make(batch_size=None, batch_size_schedule=[[0, 5], [2, 10]])
    assert [len(b["y"]) for b in take(schedule_from_zero, 3)] == [5, 5, 10]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 11}, r"`batch_size` must be at most the 10 examples.*--batch-size"),
        ({"batch_size": 0}, "`batch_size` must be an integer >= 1"),
        ({"batch_size": None}, "Give --batch-size"),
        ({"batch_size": 4, "mode": "stochastic"}, "`mode` must be one of"),
        ({"batch_size": 4, "mode": "online"}, "mode='online' takes one example"),
        ({"mode": "full", "replacement": True}, "mode='full' uses the whole split"),
        ({"batch_size": 6, "process_count": 4}, "a multiple of process_count=4"),
        ({"batch_size": 4, "process_count": 2, "process_index": 2}, "`process_index` must be <"),
        ({"batch_size": 4, "process_count": 0}, "`process_count` must be an integer >= 1"),
        ({"batch_size": 4, "seed": -1}, "`seed` must be an integer >= 0"),
        ({"batch_size": 2, "batch_size_schedule": [(5, 4), (3, 8)]}, "strictly increasing"),
        ({"batch_size": 2, "batch_size_schedule": [(5, 20)]}, "at most the 10 examples"),
        ({"batch_size": 2, "batch_size_schedule": [5]}, r"list of \(step, batch_size\) pairs"),
        ({"batch_size": None, "batch_size_schedule": [(3, 4)]}, "first phase starts at step 0"),
    ],
)
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_mismatched_data_and_bad_restore():
    with pytest.raises(ValueError, match="same number"):
        BatchIterator(np.zeros((3, 2)), np.zeros(4), batch_size=1, seed=0)
    it = make(batch_size=4, seed=1)
    for other, match in [
        (make(batch_size=4, seed=2), "saved with seed=1"),
        (make(n=12, batch_size=4, seed=1), "saved with num_examples=10"),
    ]:
        with pytest.raises(ValueError, match=match):
            other.restore(it.state())
    with pytest.raises(ValueError, match="lacks"):
        it.restore({"epoch": 0})
    with pytest.raises(ValueError, match="invalid position"):
        it.restore({"epoch": 0, "index": 10, "step": 0})
