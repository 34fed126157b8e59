"""TokenBatchIterator on Grain: windows are the memmap's tokens, resume is exact, memory bounded."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from optlab.data._token_pipeline import TokenBatchIterator, eval_windows
from optlab.errors import ConfigError

T, K = 16, 8


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "train.bin"
    np.random.default_rng(0).integers(0, 50_000, 20_001, dtype=np.uint16).tofile(path)
    return np.memmap(path, dtype=np.uint16, mode="r")


def make(tokens, **kwargs):
    kwargs = {"block_size": T, "batch_size": K, "seed": 3, **kwargs}
    return TokenBatchIterator(tokens, **kwargs)


def take(it, n):
    return [next(it) for _ in range(n)]


def assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert u.keys() == v.keys()
        for key in u:
            np.testing.assert_array_equal(u[key], v[key])


def documented_offset(seed, step, row, n, block):
    """The formula in the module docstring, written out again."""
    return int(np.random.default_rng([seed, step, row]).integers(0, n - block))


def test_random_windows_are_the_memmap_tokens_at_the_documented_offsets(tokens):
    it = make(tokens)
    ref = np.asarray(tokens, np.int64)
    for step, batch in enumerate(take(it, 5)):
        assert batch["x"].dtype == batch["y"].dtype == np.int32 and batch["x"].shape == (K, T)
        assert batch["mask"].dtype == np.float32 and batch["mask"].tolist() == [1.0] * K
        for row in range(K):
            o = documented_offset(3, step, row, len(tokens), T)
            assert 0 <= o and o + T + 1 <= len(tokens)
            np.testing.assert_array_equal(batch["x"][row], ref[o : o + T])
            np.testing.assert_array_equal(batch["y"][row], ref[o + 1 : o + T + 1])
    assert len({documented_offset(3, 0, r, len(tokens), T) for r in range(K)}) == K


def test_sequential_mode_covers_the_split_once_per_epoch(tokens):
    it = make(tokens, mode="sequential")
    spe = it.steps_per_epoch
    assert spe == (len(tokens) - 1) // (K * T) == 156
    xs = np.concatenate([b["x"].reshape(-1) for b in take(it, spe)])
    np.testing.assert_array_equal(xs, np.asarray(tokens[: spe * K * T], np.int32))
    assert it.epoch == 1 and it.step == spe
    np.testing.assert_array_equal(next(it)["y"][0], np.asarray(tokens[1 : T + 1], np.int32))


@pytest.mark.parametrize("mode", ["random", "sequential"])
@pytest.mark.parametrize("prefetch", [0, 3])
def test_resume_from_state_gives_the_same_next_batches(tokens, mode, prefetch):
    whole = take(make(tokens, mode=mode, prefetch=prefetch), 12)
    first = make(tokens, mode=mode, prefetch=prefetch)
    take(first, 7)
    state = json.loads(json.dumps(first.state()))  # as stored in the checkpoint metadata
    assert state["step"] == 7 and state["grain"] == {"next_index": 7}
    again = make(tokens, mode=mode, prefetch=prefetch)
    again.restore(state)
    assert again.step == 7
    assert_same(take(again, 5), whole[7:])


@pytest.mark.parametrize("mode", ["random", "sequential"])
def test_two_processes_concatenate_to_the_one_process_batch(tokens, mode):
    whole = take(make(tokens, mode=mode), 4)
    parts = [make(tokens, mode=mode, process_index=p, process_count=2) for p in (0, 1)]
    assert parts[0].local_batch_size == K // 2 and parts[0].batch_size == K
    for step in range(4):
        rows = [next(p) for p in parts]
        for key in ("x", "y", "mask"):
            np.testing.assert_array_equal(np.concatenate([r[key] for r in rows]), whole[step][key])
    # resume a 1-process run's state with 2 processes: the stream does not depend on P
    one = make(tokens, mode=mode)
    take(one, 2)
    half = make(tokens, mode=mode, process_index=1, process_count=2)
    half.restore(one.state())
    np.testing.assert_array_equal(next(half)["x"], whole[2]["x"][K // 2 :])


def test_segment_ids_count_eods_before_each_position():
    stream = np.asarray([5, 6, 0, 7, 0, 0, 8, 9, 0, 4, 4, 4, 4], np.uint16)
    it = TokenBatchIterator(
        stream, block_size=8, batch_size=1, seed=0, mode="sequential", segment_ids=True, eod_id=0
    )
    b = next(it)
    assert b["x"][0].tolist() == [5, 6, 0, 7, 0, 0, 8, 9]
    assert b["segment_ids"][0].tolist() == [0, 0, 0, 1, 1, 2, 3, 3]
    assert b["segment_ids"].dtype == np.int32


def test_eval_windows_are_spread_over_the_split_and_deterministic(tokens):
    ref = np.asarray(tokens, np.int32)
    total = (len(tokens) - 1) // T
    x, y = eval_windows(tokens, T)  # no cap: every aligned window, in order
    assert x.shape == y.shape == (total, T) and x.dtype == np.int32
    for j in range(total):
        np.testing.assert_array_equal(x[j], ref[j * T : (j + 1) * T])
        np.testing.assert_array_equal(y[j], ref[j * T + 1 : (j + 1) * T + 1])
    x10, y10 = eval_windows(tokens, T, 10)  # every k-th of them, k = total // 10
    k = total // 10
    assert x10.shape == (10, T) and k >= 2  # the fixture is long enough to spread
    np.testing.assert_array_equal(x10, x[::k][:10])
    np.testing.assert_array_equal(y10, y[::k][:10])
    assert (9 * k + 1) * T > (len(tokens) - 1) // 2  # the last window lies past the middle
    np.testing.assert_array_equal(eval_windows(tokens, T, 10)[0], x10)
    np.testing.assert_array_equal(eval_windows(tokens, T, total + 5)[0], x)  # capped at all


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_size": 100}, "block_size=100 needs 101 tokens .* 'val' split has 50"),
        ({"batch_size": 7, "process_count": 2}, "--batch-size 7 must be a multiple of the 2"),
        ({"mode": "sequential", "batch_size": 8}, "--batch-size 8 x block_size 16"),
        ({"mode": "shuffled"}, "mode must be one of"),
        ({"block_size": 0}, "`block_size` must be an integer >= 1"),
        ({"process_index": 2, "process_count": 2}, "process_index=2 must be < process_count"),
    ],
)
def test_bad_settings_are_one_line_config_errors(kwargs, match):
    kwargs = {"block_size": 16, "batch_size": 2, "split": "val", **kwargs}
    with pytest.raises(ConfigError, match=match) as err:
        TokenBatchIterator(np.arange(50), **kwargs)
    assert "\n" not in str(err.value)


def test_eval_windows_refuses_a_split_shorter_than_a_window():
    with pytest.raises(ConfigError, match=r"block_size=64 needs 65 tokens .* 'test' split has 64"):
        eval_windows(np.arange(64), 64, split="test")


def test_restore_refuses_another_data_or_seed(tokens):
    state = make(tokens).state()
    with pytest.raises(ConfigError, match="seed=3 but this run has 4"):
        make(tokens, seed=4).restore(state)
    with pytest.raises(ConfigError, match="block_size=16 but this run has 8"):
        make(tokens, block_size=8).restore(state)


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from optlab.data._token_pipeline import TokenBatchIterator

    def anonymous_mib():
        for line in open("/proc/self/smaps_rollup"):
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no Anonymous line")

    path, steps = sys.argv[1], int(sys.argv[2])
    tokens = np.memmap(path, dtype=np.uint16, mode="r")
    it = TokenBatchIterator(tokens, block_size=256, batch_size=64, seed=0, prefetch=4)
    next(it)
    before = anonymous_mib()
    checksum = 0
    for _ in range(steps):
        checksum += int(next(it)["x"][:, 0].sum())
    seq = TokenBatchIterator(tokens, block_size=1024, batch_size=64, mode="sequential")
    for _ in range(steps):
        next(seq)
    after = anonymous_mib()
    loaded = np.array(tokens[: len(tokens) // 2])  # control: a real load must show up
    control = anonymous_mib()
    print(json.dumps({"before_mib": before, "after_mib": after, "control_mib": control,
                      "loaded_mib": loaded.nbytes / 2**20, "tokens": len(tokens),
                      "checksum": checksum}))
    """
)


@pytest.mark.slow
def test_memory_stays_bounded_by_the_windows_not_the_corpus(tmp_path):
    """A 400 MB token file, 100 MB budget of anonymous memory growth over 2 x 600 batches."""
    path = tmp_path / "big.bin"
    n = 200_000_000  # uint16: 400 MB, several times the budget
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        for _ in range(n // 10_000_000):
            rng.integers(0, 65_536, 10_000_000, dtype=np.uint16).tofile(f)
    steps = 600  # random: 600 x 64 windows spread over the file; sequential: 157 MB read
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(path), str(steps)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    numbers = json.loads(done.stdout.strip().splitlines()[-1])
    growth = numbers["after_mib"] - numbers["before_mib"]
    print(
        f"token file {path.stat().st_size / 2**20:.0f} MiB; anonymous RSS "
        f"{numbers['before_mib']:.1f} -> {numbers['after_mib']:.1f} MiB (+{growth:.1f} MiB, "
        f"budget 100 MiB); control: loading {numbers['loaded_mib']:.0f} MiB into memory "
        f"raised it to {numbers['control_mib']:.1f} MiB"
    )
    assert numbers["tokens"] == n
    assert growth < 100
    # the probe sees a real load (so the bound above is not vacuous)
    assert numbers["control_mib"] - numbers["after_mib"] > 0.9 * numbers["loaded_mib"]
