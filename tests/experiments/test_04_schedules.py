"""Smoke test of experiments/04_schedules.py at --quick size: the files it writes, its CSV
numbers against the dict it returns, the rates it trained with, the Robbins–Monro partial
sums against NumPy float64, and the verdicts against the numbers."""

import math

import numpy as np
import pytest

from optlab.data import load_dataset
from tests.experiments.conftest import check_files, read_csv

pytestmark = pytest.mark.slow  # the experiment scripts' smoke runs

NAME = "04_schedules"
TRAINED = ("constant", "step", "exponential", "cosine", "cyclical", "inverse_time", "plateau")
ALPHA, EPOCHS, BATCH = 0.2, 3, 64  # --quick's run
DECADES = (2, 3, 4)  # --quick's horizons 10², 10³, 10⁴


def test_files_and_summary_match_the_returned_numbers(quick):
    result, out, _ = quick
    check_files(
        out,
        {"curves.csv", "summary.csv", "robbins_monro.csv", "schedules.png", "robbins_monro.png"},
    )
    rows = {r["schedule"]: r for r in read_csv(out / "summary.csv")}
    assert tuple(rows) == TRAINED == tuple(result["schedules"])
    for name, row in rows.items():
        for key, value in result["schedules"][name].items():
            assert float(row[key]) == value, (name, key)
    rm_rows = read_csv(out / "robbins_monro.csv")
    assert len(rm_rows) == len(result["robbins_monro"])
    for row, returned in zip(rm_rows, result["robbins_monro"], strict=True):
        assert row == {k: str(v) for k, v in returned.items()}


def test_the_rates_trained_with_are_the_schedules(quick):
    result, out, _ = quick
    n = len(load_dataset("mnist1d", num_samples=500).x_train)  # --quick's data
    spe = math.ceil(n / BATCH)
    total = EPOCHS * spe
    curves = read_csv(out / "curves.csv")
    for name in TRAINED:
        curve = [r for r in curves if r["schedule"] == name]
        assert [int(r["steps"]) for r in curve] == [k * spe for k in range(EPOCHS + 1)]
        t = np.array([int(r["steps"]) - 1 for r in curve[1:]], np.float64)  # last update
        rate = np.array([float(r["learning_rate"]) for r in curve[1:]])
        expected = {
            "constant": np.full_like(t, ALPHA),
            "step": ALPHA * 0.1 ** np.floor(t / math.ceil(total / 3)),
            "exponential": ALPHA * 0.01 ** (t / total),
            "cosine": ALPHA * 0.5 * (1 + np.cos(np.pi * t / total)),
            "inverse_time": ALPHA / (1 + 9 / total * t),
        }.get(name)
        if expected is not None:  # float32 rates against float64 formulas
            np.testing.assert_allclose(rate, expected, rtol=1e-5, atol=1e-9)
        if name == "cyclical":
            assert np.all((rate >= ALPHA / 10 * (1 - 1e-6)) & (rate <= ALPHA * (1 + 1e-6)))
        if name == "plateau":  # α_0 times a power of the factor 0.5, never rising
            k = np.log(rate / ALPHA) / np.log(0.5)
            np.testing.assert_allclose(k, np.round(k), atol=1e-5)
            assert np.all(np.diff(rate) <= 0)
        assert float(curve[-1]["learning_rate"]) == result["schedules"][name]["final_learning_rate"]


def test_robbins_monro_sums_against_numpy(quick):
    result, _, _ = quick
    rows = {r["schedule"]: r for r in result["robbins_monro"]}
    for d in DECADES:
        t = np.arange(1, 10**d + 1, dtype=np.float64)
        checks = {
            "lecture γ=1": (t.size, t.size),
            "lecture γ=1/t": (np.sum(1 / t), np.sum(1 / t**2)),
            "lecture γ=e^-t": (np.sum(np.exp(-t)), np.sum(np.exp(-2 * t))),
        }
        for name, (s1, s2) in checks.items():
            assert rows[name][f"sum_T1e{d}"] == pytest.approx(s1, rel=1e-12)
            assert rows[name][f"sum_sq_T1e{d}"] == pytest.approx(s2, rel=1e-12)
        # the trained constant rate, α_0 in float32: S₁ = α_0·T
        assert rows["constant"][f"sum_T1e{d}"] == pytest.approx(ALPHA * 10**d, rel=1e-6)
    # lecture 04's table: γ = 1 fails (i), e^-t fails (ii), 1/t satisfies both
    lecture = [rows[f"lecture γ={g}"] for g in ("1", "1/t", "e^-t")]
    assert [r["limit_is_zero"] for r in lecture] == [False, True, True]
    assert [r["sum_diverges"] for r in lecture] == [True, True, False]
    assert [r["sum_sq_diverges"] for r in lecture] == [True, False, False]


def test_verdicts_follow_from_the_csv_numbers(quick):
    result, out, _ = quick
    rows = {r["schedule"]: r for r in read_csv(out / "summary.csv")}
    table = {r["schedule"]: r for r in read_csv(out / "robbins_monro.csv")}
    drift = {n: float(rows[n]["last_epoch_drift"]) for n in TRAINED}
    val = {n: float(rows[n]["final_val_loss"]) for n in TRAINED}
    decaying = [n for n in TRAINED[:-1] if table[n]["limit_is_zero"] == "True"]
    assert decaying == ["step", "exponential", "cosine", "inverse_time"]
    numeric = ("limit_is_zero", "sum_diverges", "sum_sq_diverges")
    agree = all(
        [r[k] for k in numeric] == [r[f"analytic_{k}"] for k in numeric] for r in table.values()
    )
    satisfied = [
        n
        for n in TRAINED[:-1]
        if table[n]["limit_is_zero"] == "True"
        and table[n]["sum_diverges"] == "True"
        and table[n]["sum_sq_diverges"] == "False"
    ]
    expected = {
        "decay_settles": all(drift[n] < drift["constant"] for n in decaying),
        "annealing_beats_constant": sum(val[n] < val["constant"] for n in TRAINED[1:]) > 3,
        "robbins_monro_table": agree and satisfied == ["inverse_time"],
    }
    assert result["claims"] == expected
    for line, holds in zip(result["verdicts"], expected.values(), strict=True):
        assert line.startswith("VERDICT: SUPPORTED" if holds else "VERDICT: NOT SUPPORTED")
