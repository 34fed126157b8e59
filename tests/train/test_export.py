"""`export_run` / `load_exported`: a trained run's predictions survive jax.export.

One tiny run (digits, MLP widths=[32], 40 Adam steps at lr 1e-2: ~95% test accuracy) is
exported in float32, bfloat16 and float16, reloaded from disk and compared with the
run's own float32 predictions on the test split.

Tolerances:

- float32: the same operations on the same device, so the logits agree to 1e-5 (absolute;
  they are O(10)) and the accuracy equals summary.json's ``test_accuracy``.
- float16 / bfloat16, unit roundoff u = 2⁻¹¹ / 2⁻⁸. The exported pass rounds the input,
  every weight and bias, the hidden activations and the logits once each: at most 5
  roundings along any path from an input to a logit. First-order error analysis then
  bounds each logit's error by 5·u·A, where A = |W₂|ᵀ(|W₁|ᵀ|x| + |b₁|) + |b₂| is the
  forward pass of |x| through the absolute weights (float64, per example and logit; it
  is ~50 here, so the bound is ~1 in bfloat16 and ~0.12 in float16; the errors seen are
  ~0.1 of it, as random rounding errors cancel). Argmax agreement with float32: >= 99%.
"""

import json

import numpy as np
import pytest

from optlab.cli import main
from optlab.config import ConfigError
from optlab.train.export import export_run, load_exported
from optlab.train.loop import restore_run

UNIT_ROUNDOFF = {"bfloat16": 2.0**-8, "float16": 2.0**-11}
ROUNDINGS = 5  # input, weight, bias, hidden activation, logit


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained run folder, its float32 test logits, the test split and the weights."""
    out = tmp_path_factory.mktemp("run") / "digits"
    argv = ["train", "--out", str(out), "--model-arg", "widths=[32]", "--steps", "40"]
    assert main([*argv, "--learning-rate", "0.01", "--no-progress"]) == 0
    _, setup, state = restore_run(str(out))
    variables = {"params": state.params, **state.model_state}
    x, y = setup.dataset.x_test, setup.dataset.y_test
    logits = np.asarray(setup.model.apply(variables, x, train=False))
    params = {
        k: {n: np.asarray(v, np.float64) for n, v in d.items()} for k, d in state.params.items()
    }
    return out, x, y, logits, params


def test_float32_reproduces_the_runs_predictions(run):
    out, x, y, logits, _ = run
    path = export_run(out)  # default dest, symbolic batch, cpu+cuda+tpu
    assert path == out / "export" / "model.jaxexport"
    predict = load_exported(path)
    exported = np.asarray(predict(x))
    assert exported.dtype == np.float32 and exported.shape == logits.shape
    np.testing.assert_allclose(exported, logits, rtol=0, atol=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert np.mean(exported.argmax(1) == y) == pytest.approx(summary["test_accuracy"], abs=1e-9)
    meta = json.loads((out / "export" / "model.json").read_text())
    assert meta["input_shape"] == ["b", 8, 8, 1]
    assert meta["num_classes"] == 10 and meta["dtype"] == "float32"
    assert meta["platforms"] == ["cpu", "cuda", "tpu"]
    assert meta["test_accuracy"] == summary["test_accuracy"]
    assert set(meta["standardize"]) == {"mean", "std"}


def test_symbolic_batch_serves_any_batch_size(run):
    out, x, _, logits, _ = run
    predict = load_exported(export_run(out, dest=out / "poly", platforms="cpu"))
    for n in (1, 7):
        np.testing.assert_allclose(np.asarray(predict(x[:n])), logits[:n], rtol=0, atol=1e-5)


def test_fixed_batch_rejects_other_sizes(run):
    out, x, _, logits, _ = run
    path = export_run(out, dest=out / "fixed", platforms=("cpu",), batch=4)
    predict = load_exported(path.parent)  # the folder works too
    np.testing.assert_allclose(np.asarray(predict(x[:4])), logits[:4], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="Shape mismatch"):
        predict(x[:3])
    assert json.loads((path.parent / "model.json").read_text())["input_shape"] == [4, 8, 8, 1]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_within_the_rounding_bound(run, dtype):
    out, x, _, logits, params = run
    path = export_run(out, dest=out / dtype, dtype=dtype, platforms=("cpu", "cuda"))
    half = np.asarray(load_exported(path)(x))
    assert half.dtype == np.float32
    absolute = np.abs(x.reshape(len(x), -1)).astype(np.float64)
    for layer in ("Dense_0", "Dense_1"):
        absolute = absolute @ np.abs(params[layer]["kernel"]) + np.abs(params[layer]["bias"])
    bound = ROUNDINGS * UNIT_ROUNDOFF[dtype] * absolute
    error = np.abs(half - logits)
    assert np.all(error <= bound), float(np.max(error / bound))
    assert np.max(error) > 0  # the weights really were rounded
    assert np.mean(half.argmax(1) == logits.argmax(1)) >= 0.99
    # Stored in 2 bytes a weight: the artifact shrinks by ~2 bytes a parameter.
    n_params = sum(v.size for d in params.values() for v in d.values())
    full = export_run(out, dest=out / f"{dtype}_ref", platforms=("cpu", "cuda"))
    assert full.stat().st_size - path.stat().st_size >= 0.9 * 2 * n_params


def test_user_errors_name_the_flag(run, tmp_path):
    out = run[0]
    with pytest.raises(ConfigError, match="--dtype: unknown 'fp8'"):
        export_run(out, dtype="fp8")
    with pytest.raises(ConfigError, match="--platforms: unknown 'gpu'"):
        export_run(out, platforms="cpu,gpu")
    with pytest.raises(ConfigError, match="--batch"):
        export_run(out, batch=0)
    with pytest.raises(ConfigError, match=r"--run: .* holds no run"):
        export_run(tmp_path)
    with pytest.raises(ConfigError, match=r"no model\.jaxexport"):
        load_exported(tmp_path)


def test_cli_export(run, tmp_path, capsys):
    out = run[0]
    argv = ["export", "--run", str(out), "--dest", str(tmp_path), "--dtype", "bfloat16"]
    assert main([*argv, "--platforms", "cpu"]) == 0
    assert str(tmp_path / "model.jaxexport") in capsys.readouterr().out
    assert json.loads((tmp_path / "model.json").read_text())["dtype"] == "bfloat16"
    assert main(["export", "--run", str(out), "--dtype", "fp8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optlab: error: --dtype") and len(err.strip().splitlines()) == 1
    assert main(["export", "--run", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "--run" in err and len(err.strip().splitlines()) == 1
