"""Smoke test of benchmarks/optimizer_update.py at --quick size: the rows and columns it
prints (not the timings), and that --only rejects a name it does not know."""

import contextlib
import importlib.util
import io
import pathlib
import re

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "optimizer_update.py"
NUMBER = r"\d+\.\d+"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("optimizer_update", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def printed(bench):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench.main(["--quick", "--only", "adam,muon"])
    return out.getvalue()


@pytest.mark.slow  # compiles four optimizer steps: ~10 s on the loaded 2-core CPU
def test_quick_run_prints_the_selected_rows_with_ratios(printed):
    lines = printed.splitlines()
    assert re.match(r"0\.2M float32 parameters, \w+, reps=3 \(muon, shampoo, soap: 2\)", lines[0])
    assert lines[1].split() == ["optimizer", "optlab", "ms", "optax", "ms", "ratio"]
    rows = {}
    for line in lines[2:]:
        if not line.strip():
            break
        name, *cells = line.split()
        rows[name] = cells
    assert set(rows) == {"adam", "muon"}  # --only: nothing else
    for cells in rows.values():  # optlab ms, optax ms, ratio (and a flag if > 1.10)
        assert all(re.fullmatch(NUMBER, c) for c in cells[:3]), cells
        assert cells[3:] in ([], [">", "1.10"])
    assert re.search(rf"adam step {NUMBER} ms vs moving the same 28 B/param", printed)
    muon = re.search(
        rf"muon: Newton–Schulz .* extra FLOPs a step (\S+), .* ratio {NUMBER}", printed
    )
    assert muon and float(muon.group(1)) > 0
    assert re.search(rf"worst optlab/optax ratio: {NUMBER} \(target <= 1\.10\)", printed)
    assert "no optax peer" not in printed  # the Shampoo/SOAP section was not selected


def test_only_rejects_unknown_names(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--only", "adam,keras"])
    assert "unknown ['keras']" in capsys.readouterr().err


def test_every_optax_peer_has_a_row(bench):
    names = {bench.key(name) for name in bench.PAIRS}
    expected = """amsgrad adamax radam adabelief yogi adadelta rprop novograd lars lamb adafactor
        lion adopt ademamix adan muon schedule_free_sgd schedule_free_adamw prodigy
        sgd momentum nesterov adagrad rmsprop adam nadam adamw""".split()
    assert set(expected) <= names
    assert set(bench.SECTIONS) == {"shampoo", "soap"}
