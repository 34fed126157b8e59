"""Smoke test of experiments/08_mnist1d_baselines.py at tiny size."""

import pytest

from tests.experiments.conftest import check_files, read_csv

pytestmark = pytest.mark.slow  # the experiment scripts' smoke runs

NAME = "08_mnist1d_baselines"


def test_published_table_is_the_papers(experiment):
    # Greydanus 2020's MNIST-1D row: logistic 32%, MLP 68%, CNN 94%, GRU 91%, human 96%,
    # read from the installed package's README (or the constants when it lacks it).
    table, source = experiment.published_table()
    assert table == pytest.approx(
        {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94, "gru": 0.91, "human": 0.96}
    )
    assert "Greydanus 2020" in source


def test_writes_its_files(quick):
    _, out, _ = quick
    check_files(out, {"baselines.csv", "baselines.png", "curves.png"})


def test_csv_holds_the_returned_numbers_beside_the_paper(quick):
    result, out, _ = quick
    rows = read_csv(out / "baselines.csv")
    ours = [r for r in rows if r["test_accuracy"]]
    assert [r["model"] for r in ours] == ["logistic", "mlp", "cnn"]
    assert {r["model"] for r in rows if not r["test_accuracy"]} == {"gru", "human"}
    for row, expected in zip(ours, result["rows"], strict=True):
        test = float(row["test_accuracy"])
        assert test == expected["test_accuracy"]
        assert float(row["paper_test_accuracy"]) == result["paper"][row["model"]]
        assert float(row["gap_points"]) == pytest.approx(
            100 * (test - float(row["paper_test_accuracy"])), abs=1e-9
        )
    assert int(ours[0]["params"]) == 40 * 10 + 10  # a linear map 40 → 10 and its bias


def test_verdict_is_printed_and_follows_the_ordering(quick):
    result, out, printed = quick
    assert result["verdict"] in printed and result["verdict"].startswith("VERDICT: ")
    acc = {
        r["model"]: float(r["test_accuracy"])
        for r in read_csv(out / "baselines.csv")
        if r["test_accuracy"]
    }
    ordered = acc["logistic"] < acc["mlp"] < acc["cnn"]
    assert result["verdict"].startswith("VERDICT: SUPPORTED") == ordered
