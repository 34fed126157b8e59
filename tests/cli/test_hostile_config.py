"""A hostile or careless config on the command line: an import path in a file or a run
folder imports nothing unless the user vouches for it, and every bad value is one line,
exit 2, with nothing written.

The import-watching module writes a marker file when imported; it sits on the import path
(and in the working directory), so a refusal is the rule at work, not a failed import.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from optlab.cli import main

MOD = "optlab_hostile_marker_mod"
RUN = ["--dataset", "synthetic_logistic", "--batch-size", "32", "--steps", "2"]
TINY = [*RUN, "--no-progress"]
COMMANDS = {  # command -> its flags for a quick run (each takes --config)
    "train": TINY,
    "doctor": [*RUN, "--check", "initial_loss"],
    "lr-find": RUN,
    "sweep": [*RUN, "--learning-rate", "0.1,0.01"],
}


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """(module name, marker path), the module importable from the working directory."""
    flag = tmp_path / "IMPORTED"
    (tmp_path / f"{MOD}.py").write_text(
        f"import pathlib, optlab\npathlib.Path({str(flag)!r}).write_text('ran')\nfn = optlab.sgd\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])  # restored afterwards
    monkeypatch.delitem(sys.modules, MOD, raising=False)
    yield MOD, flag
    sys.modules.pop(MOD, None)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optlab: error: "), err
    return err[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_an_import_path_in_its_config_file(tmp_path, marker, capsys, command):
    name, flag = marker
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"optimizer:\n  optimizer: {name}:fn\n  args: {{}}\n")
    out = tmp_path / "out"
    assert main([command, *COMMANDS[command], "--config", str(cfg), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "import path" in line and "--allow-imports" in line and f"--optimizer {name}:fn" in line
    assert not flag.exists() and name not in sys.modules and not out.exists()


@pytest.mark.slow  # two short training runs
def test_allow_imports_opts_in_and_a_flag_overrides_the_file(tmp_path, marker, capsys):
    name, flag = marker
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"optimizer": {"optimizer": f"{name}:fn", "learning_rate": 0.1}}))
    argv = ["train", *TINY, "--config", str(cfg)]
    assert main([*argv, "--optimizer", "sgd", "--out", str(tmp_path / "a")]) == 0
    assert not flag.exists() and name not in sys.modules  # the flag's value replaced it
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["optimizer"]["optimizer"] == "sgd"
    assert main([*argv, "--allow-imports", "--out", str(tmp_path / "b")]) == 0
    assert flag.read_text() == "ran"  # imported, as the user allowed
    capsys.readouterr()


BAD_FILES = [  # (file name, bytes, words of the one-line error)
    (
        "cfg.yaml",
        b'optimizer:\n  learning_rate: "1e-3"\n',
        "optimizer.learning_rate must be a number, got '1e-3' (a string); write 1e-3 without "
        "quotes",
    ),
    ("cfg.yaml", b"train:\n  epochs: true\n", "train.epochs must be a whole number or null"),
    ("cfg.yaml", b"model:\n  options: 5\n", "model.options must be a mapping of names to values"),
    ("cfg.yaml", b"optimizer:\n  args: [1]\n", "optimizer.args must be a mapping"),
    ("cfg.yaml", b"data: 5\n", "[data] must be a mapping of fields, got 5"),
    ("cfg.yaml", b"train: [\n", "is not valid YAML (line 2"),
    ("cfg.yaml", b"train:\n  steps: \xff\n", "is not UTF-8 text (byte 0xff on line 2)"),
    ("cfg.yaml", b"!!python/object/apply:os.system ['true']\n", "no Python tags"),
    ("cfg.json", b'{"train": {"steps": 2,,}}', "is not valid JSON (line 1, column 23"),
    ("cfg.json", b'{"train": {"seed": 1180591620717411303424}}', "train.seed is too large"),
    ("cfg.json", b'{"optimizer": {"learning_rate": NaN}}', "must be a finite number, got nan"),
    ("cfg.json", b'"adam"', "must hold a mapping of sections"),
]


@pytest.mark.parametrize(("name", "content", "words"), BAD_FILES, ids=[w for *_, w in BAD_FILES])
def test_a_bad_config_file_is_one_line_and_writes_nothing(tmp_path, capsys, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    assert main(["train", "--no-progress", "--config", str(path), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert words in line and str(path) in line, line
    assert not out.exists()


NUMBER_AS_TEXT = [  # (bad flags, corrected flags, words of the one-line error)
    (["--opt-arg", "b1=abc"], ["--opt-arg", "b1=0.8"], "--opt-arg: adam's b1 takes a number"),
    (
        ["--schedule", "cosine_decay", "--schedule-arg", "warmup_steps=abc"],
        ["--schedule", "cosine_decay", "--schedule-arg", "warmup_steps=1"],
        "--schedule-arg: cosine_decay's warmup_steps takes a number, got 'abc'",
    ),
    (["--optimizer", "momentum", "--opt-arg", "mu=fast"], ["--optimizer", "momentum"], "mu"),
    (["--opt-arg", "eps=true"], ["--opt-arg", "eps=1e-7"], "adam's eps takes a number, got True"),
]


@pytest.mark.parametrize(("bad", "good", "words"), NUMBER_AS_TEXT)
def test_text_for_a_number_is_refused_before_anything_is_written(
    tmp_path, capsys, bad, good, words
):
    assert main(["train", *TINY, *bad, "--out", str(tmp_path / "run")]) == 2
    line = _one_error_line(capsys)
    assert words in line and "takes a number" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # trains: the refused command left nothing that blocks the corrected one
@pytest.mark.parametrize(("bad", "good", "words"), NUMBER_AS_TEXT[:2])
def test_the_corrected_command_then_runs(tmp_path, capsys, bad, good, words):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, *bad, "--out", out]) == 2
    assert words in _one_error_line(capsys)
    assert main(["train", *TINY, *good, "--out", out]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("command", ["train", "lr-find", "sweep"])
def test_an_empty_or_impossible_out_is_one_line(tmp_path, capsys, command):
    (tmp_path / "file").write_text("x")
    for out, words in (("", "--out must name a folder"), (str(tmp_path / "file"), "is a file")):
        assert main([command, *COMMANDS[command], "--out", out]) == 2
        assert words in _one_error_line(capsys)
    assert main([command, *COMMANDS[command], "--out", str(tmp_path / "file" / "below")]) == 2
    assert "is a file" in _one_error_line(capsys)


def _fake_run(tmp_path, optimizer: str) -> pathlib.Path:
    """A run folder as someone else might send it: a config.json, no checkpoints."""
    out = tmp_path / "sent"
    out.mkdir()
    config = {"optimizer": {"optimizer": optimizer}, "out": str(out), "sources": {}}
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.mark.parametrize("command", ["export", "summary"])
def test_a_run_folder_from_someone_else_imports_nothing(tmp_path, marker, capsys, command):
    name, flag = marker
    out = _fake_run(tmp_path, f"{name}:fn")
    assert main([command, "--run", str(out)]) == 2
    line = _one_error_line(capsys)
    assert f"this run was made with --optimizer {name}:fn" in line and "--allow-imports" in line
    assert main([command, "--run", str(out), "--optimizer", "other_mod:fn"]) == 2
    assert "not other_mod:fn" in _one_error_line(capsys)
    assert not flag.exists() and name not in sys.modules


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"\x80\x81", "is not UTF-8 text"), (b"{oops", "is not valid JSON"), (b"[]", "a mapping")],
)
@pytest.mark.parametrize("command", ["export", "summary"])
def test_a_damaged_config_json_is_one_line(tmp_path, capsys, command, content, words):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_bytes(content)
    assert main([command, "--run", str(out)]) == 2
    line = _one_error_line(capsys)
    assert words in line and "config.json" in line and "another --out" in line


@pytest.mark.slow  # trains a run, then exports it (jax.export lowering)
def test_export_and_summary_of_an_import_path_run_need_the_flag_again(tmp_path, marker, capsys):
    name, flag = marker
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--optimizer", f"{name}:fn", "--out", out]) == 0
    assert flag.read_text() == "ran"
    flag.unlink()
    sys.modules.pop(name)
    for command in ("export", "summary"):
        assert main([command, "--run", out]) == 2
        assert "pass --optimizer" in _one_error_line(capsys)
    assert not flag.exists() and name not in sys.modules
    assert main(["summary", "--run", out, "--optimizer", f"{name}:fn"]) == 0
    assert flag.read_text() == "ran"
    dest = tmp_path / "exported"
    argv = ["export", "--run", out, "--platforms", "cpu", "--dest", str(dest)]
    assert main([*argv, "--optimizer", f"{name}:fn"]) == 0
    assert (dest / "model.jaxexport").stat().st_size > 0
    (dest / "model.jaxexport").unlink()
    assert main([*argv, "--allow-imports"]) == 0
    assert (dest / "model.jaxexport").exists()
    capsys.readouterr()


@pytest.mark.slow  # a subprocess: `python -m optlab` puts the working directory first
def test_python_m_optlab_with_the_module_beside_it_still_imports_nothing(tmp_path):
    flag = tmp_path / "IMPORTED"
    (tmp_path / "evil.py").write_text(f"import pathlib\npathlib.Path({str(flag)!r}).touch()\n")
    (tmp_path / "cfg.yaml").write_text("optimizer:\n  optimizer: evil:x\n")
    env = {**os.environ, "XLA_FLAGS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "optlab", "train", "--config", "cfg.yaml", "--out", "run"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "import path" in lines[0], done.stderr
    assert not flag.exists() and not (tmp_path / "run").exists()


def test_numbers_json_lacks_are_numbers_and_text_stays_text():
    from optlab.cli import parser
    from optlab.cli._flags import config_from_args

    pairs = ["b1=.9", "b2=0.99", "eps=1e-7", "ns=+3", "like=torch"]
    args = parser().parse_args(["train", *[f for p in pairs for f in ("--opt-arg", p)]])
    assert config_from_args(args).optimizer.args == {
        "b1": 0.9, "b2": 0.99, "eps": 1e-7, "ns": 3, "like": "torch"
    }  # fmt: skip


def test_summary_takes_the_trust_flags_only_with_run(capsys):
    assert main(["summary", "--optimizer", "mod:fn"]) == 2
    assert "go with --run" in _one_error_line(capsys)
