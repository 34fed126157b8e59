"""`export_run` / `load_exported`: a trained run's predictions survive jax.export.

One tiny run (digits, MLP widths=[32], 40 Adam steps at lr 1e-2: ~95% test accuracy) is
exported in float32, bfloat16 and float16, reloaded from disk and fed the test split's
RAW rows (``sklearn.datasets.load_digits().data``, pixel values 0..16, before any optlab
preprocessing): the artifact applies the ÷16 and the standardization itself, and its
outputs are compared with the run's own float32 predictions on the test split.

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
from optlab.data import DATASETS, load_dataset
from optlab.errors import ConfigError
from optlab.train import export
from optlab.train.export import export_run, load_exported
from optlab.train.loop import restore_run

UNIT_ROUNDOFF = {"bfloat16": 2.0**-8, "float16": 2.0**-11}
ROUNDINGS = 5  # input, weight, bias, hidden activation, logit


def raw_test_rows(seed):
    """The test split's rows of ``load_digits().data`` itself (float64, values 0..16), in
    the order of ``Dataset.x_test``: each found by its pixels, unscaled exactly (×16)."""
    from sklearn.datasets import load_digits

    everything = load_digits().data
    index = {row.tobytes(): i for i, row in enumerate(everything)}
    unscaled = load_dataset("digits", seed=seed, standardize=False).x_test * 16
    rows = [index[row.reshape(64).astype(np.float64).tobytes()] for row in unscaled]
    return everything[rows]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained run folder, the test split's raw rows, its preprocessed inputs, labels and
    the run's float32 test logits, and the weights."""
    out = tmp_path_factory.mktemp("run") / "digits"
    argv = ["train", "--out", str(out), "--model-arg", "widths=[32]", "--steps", "40"]
    assert main([*argv, "--learning-rate", "0.01", "--no-progress"]) == 0
    cfg, setup, state = restore_run(str(out))
    variables = {"params": state.params, **state.model_state}
    x, y = setup.dataset.x_test, setup.dataset.y_test
    raw = raw_test_rows(cfg.train.seed)
    assert raw.shape == (len(x), 64) and raw.max() == 16
    logits = np.asarray(setup.model.apply(variables, x, train=False))
    params = {
        k: {n: np.asarray(v, np.float64) for n, v in d.items()} for k, d in state.params.items()
    }
    return out, raw, x, y, logits, params


def test_float32_on_raw_rows_reproduces_the_runs_predictions(run):
    out, raw, x, y, logits, _ = run
    path = export_run(out)  # default dest, symbolic batch, cpu+cuda+tpu
    assert path == out / "export" / "model.jaxexport"
    predict = load_exported(path)
    exported = np.asarray(predict(raw))
    assert exported.dtype == np.float32 and exported.shape == logits.shape
    np.testing.assert_allclose(exported, logits, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(exported.argmax(1), logits.argmax(1))  # same predictions
    summary = json.loads((out / "summary.json").read_text())
    assert np.mean(exported.argmax(1) == y) == pytest.approx(summary["test_accuracy"], abs=1e-9)
    meta = json.loads((out / "export" / "model.json").read_text())
    assert meta["input_shape"] == meta["input"]["shape"] == ["b", 64]
    assert meta["input"]["dtype"] == "float32" and "load_digits().data" in meta["input"]["raw"]
    assert "0..16" in meta["input"]["raw"]
    assert meta["output"]["shape"] == meta["output_shape"] == ["b", 10]
    assert meta["num_classes"] == 10 and meta["dtype"] == "float32"
    assert meta["platforms"] == ["cpu", "cuda", "tpu"]
    assert meta["test_accuracy"] == summary["test_accuracy"]
    # Already preprocessed inputs are refused (wrong shape), never silently mispredicted.
    with pytest.raises(ValueError, match="Rank mismatch"):
        predict(x)


def test_model_json_describes_the_whole_preprocessing(run):
    # Applying model.json's steps by hand to the raw rows gives the run's inputs exactly.
    out, raw, x, _, _, _ = run
    export_run(out, dest=out / "described", platforms="cpu")
    steps = json.loads((out / "described" / "model.json").read_text())["input"]["steps"]
    assert [s["op"] for s in steps] == ["reshape", "divide", "standardize"]
    by_hand = raw.astype(np.float32)
    for step in steps:
        if step["op"] == "reshape":
            assert step["to"] == ["b", 8, 8, 1]
            by_hand = by_hand.reshape(len(raw), *step["to"][1:])
        elif step["op"] == "divide":
            assert step["by"] == 16.0
            by_hand = by_hand / np.float32(step["by"])
        else:
            assert step["formula"] == "(x - mean) / std"
            mean, std = np.float32(step["mean"]), np.float32(step["std"])
            by_hand = (by_hand - mean) / std
    np.testing.assert_array_equal(by_hand, x)


def test_every_dataset_has_its_raw_input_described():
    assert set(export._RAW) == set(DATASETS)


def test_symbolic_batch_serves_any_batch_size(run):
    out, raw, _, _, logits, _ = run
    predict = load_exported(export_run(out, dest=out / "poly", platforms="cpu"))
    for n in (1, 7):
        np.testing.assert_allclose(np.asarray(predict(raw[:n])), logits[:n], rtol=0, atol=1e-5)


def test_fixed_batch_rejects_other_sizes(run):
    out, raw, _, _, logits, _ = run
    path = export_run(out, dest=out / "fixed", platforms=("cpu",), batch=4)
    predict = load_exported(path.parent)  # the folder works too
    np.testing.assert_allclose(np.asarray(predict(raw[:4])), logits[:4], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="Shape mismatch"):
        predict(raw[:3])
    meta = json.loads((path.parent / "model.json").read_text())
    assert meta["input_shape"] == [4, 64] and meta["input"]["steps"][0]["to"] == [4, 8, 8, 1]


def test_deserialize_and_call_as_documented(run):
    # The docstring's and `optlab export --help`'s recipe: plain jax.export, no optlab.
    import jax

    out, raw, _, _, logits, _ = run
    path = export_run(out, dest=out / "plain", platforms="cpu")
    exported = jax.export.deserialize(bytearray(open(path, "rb").read()))
    got = np.asarray(exported.call(raw[:5].astype(np.float32)))
    np.testing.assert_allclose(got, logits[:5], rtol=0, atol=1e-5)
    probabilities = np.asarray(jax.nn.softmax(got, axis=-1))
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-6)


def test_cli_help_documents_loading(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    assert "jax.export.deserialize" in text and "exported.call(rows)" in text
    assert "RAW dataset rows" in text and "load_digits().data" in text


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_within_the_rounding_bound(run, dtype):
    out, raw, x, _, logits, params = run
    path = export_run(out, dest=out / dtype, dtype=dtype, platforms=("cpu", "cuda"))
    half = np.asarray(load_exported(path)(raw))
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


def test_per_feature_standardization_on_raw_points(tmp_path):
    # spirals: no scaling, per-feature statistics; raw points are the unstandardized ones.
    out = tmp_path / "spirals"
    argv = ["train", "--dataset", "spirals", "--out", str(out), "--steps", "30"]
    assert main([*argv, "--model-arg", "widths=[16]", "--no-progress"]) == 0
    path = export_run(out, platforms="cpu")
    raw = load_dataset("spirals", standardize=False)
    predicted = np.asarray(load_exported(path)(raw.x_test)).argmax(1)
    _, setup, state = restore_run(str(out))
    variables = {"params": state.params, **state.model_state}
    logits = np.asarray(setup.model.apply(variables, setup.dataset.x_test, train=False))
    np.testing.assert_array_equal(predicted, logits.argmax(1))
    summary = json.loads((out / "summary.json").read_text())
    assert np.mean(predicted == raw.y_test) == pytest.approx(summary["test_accuracy"], abs=1e-9)
    steps = json.loads((path.parent / "model.json").read_text())["input"]["steps"]
    assert [s["op"] for s in steps] == ["reshape", "standardize"]
    assert len(steps[1]["mean"]) == len(steps[1]["std"]) == 2
