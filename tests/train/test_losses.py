"""Losses and lecture 03's metrics against scikit-learn's and the formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab.train import losses

metrics = pytest.importorskip("sklearn.metrics")


def test_cross_entropy_and_mse_formulas():
    logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    labels = jnp.array([0, 2])
    p = np.exp(np.asarray(logits)) / np.exp(np.asarray(logits)).sum(1, keepdims=True)
    want = -np.log(p[[0, 1], [0, 2]])
    np.testing.assert_allclose(losses.per_example_loss("cross_entropy", logits, labels), want,
                               rtol=1e-6)  # fmt: skip
    targets = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    np.testing.assert_allclose(
        losses.per_example_loss("mse", logits, targets),
        0.5 * ((np.asarray(logits) - np.asarray(targets)) ** 2).sum(1),
        rtol=1e-6,
    )


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # rounded: many ties
    assert losses.roc_auc(scores, labels) == pytest.approx(
        metrics.roc_auc_score(labels, scores), abs=1e-12
    )
    assert np.isnan(losses.roc_auc(scores, np.zeros(300)))


def test_precision_recall_f1_and_padding_mask():
    rng = np.random.default_rng(1)
    num_classes, n = 4, 200
    labels = rng.integers(0, num_classes, n)
    logits = rng.standard_normal((n, num_classes)) + 2.0 * np.eye(num_classes)[labels]
    mask = np.ones(n)
    mask[-30:] = 0  # padding: must not count
    batch = {"y": jnp.asarray(labels), "mask": jnp.asarray(mask)}
    counts = jax.device_get(losses.batch_counts("cross_entropy", jnp.asarray(logits), batch,
                                                num_classes))  # fmt: skip
    got = losses.summarize("val", counts)
    real = slice(0, n - 30)
    pred = logits.argmax(1)[real]
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(
        labels[real], pred, labels=range(num_classes), zero_division=0
    )
    for k in range(num_classes):
        assert got[f"val_precision_{k}"] == pytest.approx(precision[k])
        assert got[f"val_recall_{k}"] == pytest.approx(recall[k])
        assert got[f"val_f1_{k}"] == pytest.approx(f1[k])
    assert got["val_accuracy"] == pytest.approx(metrics.accuracy_score(labels[real], pred))
    assert got["val_f1_macro"] == pytest.approx(np.mean(f1))
