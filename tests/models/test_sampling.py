"""Sampling with the KV cache: equal to recomputing the prefix, jitted once per shape,
deterministic for a seed, and cropping to block_size past the window."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab.models import GPT, _sampling, logits_by_recompute, sample

V, T = 64, 16
RTOL, ATOL = 1e-4, 1e-5  # float32: the cache path sums the same products in another order


def next_logits(model, params, seq):
    """The next-token logits after ``seq`` by a full forward without a cache: ``seq`` right-
    padded to block_size (one compiled shape; causality, tested in test_gpt.py, makes the
    padding invisible to row len(seq) - 1)."""
    window = np.zeros((1, T), np.int32)
    window[0, : len(seq)] = seq
    return np.asarray(_apply(model, {"params": params}, window)[0, len(seq) - 1])


_apply = jax.jit(lambda model, variables, x: model.apply(variables, x), static_argnums=0)


@pytest.fixture(scope="module", params=["learned", "rope"])
def trained(request):
    model = GPT(vocab_size=V, block_size=T, n_layer=2, n_head=4, d_model=32, pos=request.param)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, T), jnp.int32))["params"]
    # larger logits than at init, so that greedy choices are not near-ties
    params = jax.tree.map(lambda x: x * 3.0 if x.ndim >= 2 else x, params)
    return model, params


def test_cached_logits_equal_recompute_and_greedy_is_identical(trained):
    model, params = trained
    prompt = np.array([3, 1, 4, 1, 5])
    out, logits = sample(model, params, prompt, max_tokens=T - 5, temperature=0, return_logits=True)
    assert out.shape == (T,) and np.array_equal(out[:5], prompt)
    full = logits_by_recompute(model, params, out)
    # the logits token t+1 was drawn from are row t of the full forward
    np.testing.assert_allclose(logits, full[4 : T - 1], rtol=RTOL, atol=ATOL)
    greedy = [int(x) for x in prompt]
    for _ in range(T - 5):  # greedy by recomputing the whole prefix each time
        greedy.append(int(np.argmax(next_logits(model, params, greedy))))
    np.testing.assert_array_equal(out, greedy)


def test_same_seed_same_text_other_seed_differs(trained):
    model, params = trained
    kw = {"max_tokens": 12, "temperature": 1.0, "top_k": 20}
    a = sample(model, params, np.array([7]), seed=0, **kw)
    b = sample(model, params, np.array([7]), seed=0, **kw)
    c = sample(model, params, np.array([7]), seed=1, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_top_k_one_is_greedy(trained):
    model, params = trained
    a = sample(model, params, np.array([2, 9]), max_tokens=6, temperature=0.7, top_k=1, seed=3)
    b = sample(model, params, np.array([2, 9]), max_tokens=6, temperature=0)
    np.testing.assert_array_equal(a, b)


def test_past_block_size_the_window_is_cropped(trained):
    model, params = trained
    prompt = np.arange(T - 2) % V
    out, logits = sample(model, params, prompt, max_tokens=8, temperature=0, return_logits=True)
    assert out.shape == (T - 2 + 8,)
    for i in range(8):  # token n is drawn from the last min(n, T) tokens
        n = T - 2 + i
        window = out[max(0, n - T) : n]
        want = next_logits(model, params, window)
        np.testing.assert_allclose(logits[i], want, rtol=RTOL, atol=ATOL)


def test_prefill_and_step_compile_once_per_shape():
    model = GPT(vocab_size=V, block_size=T, n_layer=1, n_head=2, d_model=16)
    params = jax.jit(model.init)(jax.random.key(1), jnp.zeros((1, T), jnp.int32))["params"]
    before = (_sampling.prefill._cache_size(), _sampling.step._cache_size())
    for prompt, n in (([1], 5), ([1, 2, 3, 4, 5, 6], 20), ([9] * T, 3)):  # lengths vary
        sample(model, params, np.array(prompt), max_tokens=n, temperature=0.5, seed=n)
    after = (_sampling.prefill._cache_size(), _sampling.step._cache_size())
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


@pytest.mark.parametrize(
    ("prompt", "kw", "message"),
    [
        (np.array([], np.int32), {}, r"`prompt` must be a non-empty 1-D"),
        (np.array([[1, 2]]), {}, r"`prompt` must be a non-empty 1-D"),
        (np.array([1.5]), {}, r"`prompt` must be a non-empty 1-D"),
        (np.array([V]), {}, r"`prompt` ids must be in \[0, 64\)"),
        (np.array([-1]), {}, r"`prompt` ids must be in"),
        (np.array([1]), {"max_tokens": -1}, r"`max_tokens` must be an integer >= 0"),
        (np.array([1]), {"temperature": -0.5}, r"`temperature` must be a number >= 0"),
        (np.array([1]), {"top_k": 0}, r"`top_k` must be a positive integer or None"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(prompt, kw, message):
    model = GPT(vocab_size=V, block_size=T, n_layer=1, n_head=2, d_model=16)
    kw = {"max_tokens": 2, **kw}
    with pytest.raises(ValueError, match=message):
        sample(model, {}, prompt, **kw)
