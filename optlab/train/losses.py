"""Losses and metrics (lecture 03: cross-entropy, MSE; precision, recall, F1, ROC AUC).

Every batch carries a ``mask`` (1 for a real example, 0 for padding), so losses and counts
are weighted by it and a padded final batch changes nothing.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

LOSSES = ("cross_entropy", "mse", "next_token")


def per_example_loss(name: str, logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Cross-entropy −log softmax(z)_y for integer labels, or ½‖z − y‖² (summed over outputs),
    or, for ``next_token`` (a language model: logits ``(B, T, V)``, targets ``(B, T)``, the
    input shifted by one), the mean over the ``T`` positions of −log softmax(z_t)_{y_t};
    computed in at least float32 (bf16/f16 logits are widened; float64 stays float64)."""
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    if name == "next_token":
        log_probs = jax.nn.log_softmax(logits)
        picked = jnp.take_along_axis(log_probs, targets[..., None].astype(jnp.int32), axis=-1)
        return -jnp.mean(picked[..., 0], axis=-1)
    if name == "cross_entropy":
        log_probs = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(log_probs, targets[:, None].astype(jnp.int32), axis=1)[:, 0]
    if name == "mse":
        targets = targets.reshape(logits.shape).astype(logits.dtype)
        return 0.5 * jnp.sum((logits - targets) ** 2, axis=-1)
    raise ValueError(f"loss: unknown {name!r}; choose from {LOSSES}")


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def batch_counts(loss_name: str, logits: jax.Array, batch: dict, num_classes: int) -> dict:
    """Sums over one evaluation batch (masked): loss, examples, correct, confusion matrix."""
    mask = batch["mask"].astype(jnp.float32)
    losses = per_example_loss(loss_name, logits, batch["y"])
    out = {"loss_sum": jnp.sum(losses * mask), "count": jnp.sum(mask)}
    if loss_name == "next_token":  # every window is whole: T tokens a row
        out["tokens"] = jnp.sum(mask) * batch["y"].shape[-1]
    if loss_name == "cross_entropy":
        pred = jnp.argmax(logits, axis=-1)
        labels = batch["y"].astype(jnp.int32)
        out["correct"] = jnp.sum((pred == labels) * mask)
        onehot_true = jax.nn.one_hot(labels, num_classes) * mask[:, None]
        onehot_pred = jax.nn.one_hot(pred, num_classes)
        out["confusion"] = onehot_true.T @ onehot_pred  # [true, predicted]
        if num_classes == 2:
            out["positive_score"] = jax.nn.softmax(logits.astype(jnp.float32))[:, 1]
    return out


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties ½
    (the Mann–Whitney U statistic), computed with average ranks."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def summarize(prefix: str, totals: dict[str, Any], extra: dict[str, Any] | None = None) -> dict:
    """Flat metrics (``<prefix>_loss``, ``_accuracy``, per-class ``_precision_k``…, ``_f1_macro``,
    ``_roc_auc``) from the summed counts of an evaluation pass; ``{}`` for an empty split
    (``val_fraction=0`` holds out nothing).

    An ``extra`` metric that is undefined on this split (NaN: the ROC AUC of a split that
    holds one class only) is left out: it is not a result, and reporting it as a non-finite
    value would make a healthy run look diverged."""
    if not totals:
        return {}
    count = max(float(totals["count"]), 1.0)
    out = {f"{prefix}_loss": float(totals["loss_sum"]) / count}
    if "tokens" in totals:  # a language model's loss is in nats per token
        loss = out[f"{prefix}_loss"]
        out[f"{prefix}_perplexity"] = float(np.exp(min(loss, 700.0)))
        if totals.get("bytes_per_token"):
            # bits per byte = nats per token / ln 2 / (bytes per token)
            bpt = float(totals["bytes_per_token"])
            out[f"{prefix}_bits_per_byte"] = loss / np.log(2.0) / bpt
    if "correct" in totals:
        out[f"{prefix}_accuracy"] = float(totals["correct"]) / count
        confusion = np.asarray(totals["confusion"], float)
        true_pos = np.diag(confusion)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(confusion.sum(0) > 0, true_pos / confusion.sum(0), 0.0)
            recall = np.where(confusion.sum(1) > 0, true_pos / confusion.sum(1), 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
        for k in range(len(true_pos)):
            out[f"{prefix}_precision_{k}"] = float(precision[k])
            out[f"{prefix}_recall_{k}"] = float(recall[k])
            out[f"{prefix}_f1_{k}"] = float(f1[k])
        out[f"{prefix}_f1_macro"] = float(np.mean(f1))
    if extra:
        out.update({f"{prefix}_{k}": v for k, v in extra.items() if not _undefined(v)})
    return out


def _undefined(value: Any) -> bool:
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def metric_names(prefix: str, loss: str, num_classes: int) -> list[str]:
    """The names ``summarize`` reports for an evaluation pass of a task with this ``loss``
    and ``num_classes`` (the ROC AUC for two classes, which the evaluation adds), in its
    order; derived from ``summarize`` itself, so the two cannot disagree.

    Example:
      >>> metric_names("val", "mse", 0)
      ['val_loss']
      >>> metric_names("val", "cross_entropy", 2)[:3], metric_names("val", "cross_entropy", 2)[-1]
      (['val_loss', 'val_accuracy', 'val_precision_0'], 'val_roc_auc')
    """
    totals: dict[str, Any] = {"loss_sum": 0.0, "count": 1.0}
    extra = {}
    if loss == "next_token":
        totals.update(tokens=1.0, bytes_per_token=1.0)
    if loss == "cross_entropy":
        totals.update(correct=0.0, confusion=np.zeros((num_classes, num_classes)))
        if num_classes == 2:
            extra["roc_auc"] = 0.5
    return list(summarize(prefix, totals, extra))
