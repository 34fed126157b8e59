"""Config files and run folders are data: an import path in one imports nothing unless the
user allows it, every field's type is checked, and every unreadable file is one line.

Imports are watched with a module that writes a marker file when imported, and with
modules that run code on import (``this`` prints the Zen of Python): after a refusal the
marker is absent and the module is not in ``sys.modules``.
"""

import json
import pathlib
import sys

import numpy as np
import optax
import pytest

import optlab
from optlab.cli._flags import to_flags
from optlab.config import ConfigError, RunConfig, build_optimizer, build_schedule, optimizer_name

MARKER_MODULE = "optlab_test_marker_mod"


def own_optimizer(learning_rate):
    """A user's factory from Python (stored in config.json as module:qualname)."""
    return optlab.sgd(learning_rate)


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """(module name, marker path): importing the module creates the marker file."""
    folder = tmp_path / "mods"
    folder.mkdir()
    flag = tmp_path / "IMPORTED"
    (folder / f"{MARKER_MODULE}.py").write_text(
        f"import pathlib, optlab\npathlib.Path({str(flag)!r}).write_text('ran')\nfn = optlab.sgd\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, MARKER_MODULE, raising=False)
    yield MARKER_MODULE, flag
    sys.modules.pop(MARKER_MODULE, None)


def _write(path: pathlib.Path, raw) -> pathlib.Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(raw))
    else:
        import yaml

        class Dumper(yaml.SafeDumper):
            """Every string quoted, so that "1e-3" stays text in any YAML version."""

        Dumper.add_representer(
            str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style='"')
        )
        path.write_text(yaml.dump(raw, Dumper=Dumper))
    return path


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message


# ---- import paths ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_an_import_path_in_a_file_is_refused_and_nothing_imported(tmp_path, marker, suffix):
    name, flag = marker
    path = _write(tmp_path / f"cfg{suffix}", {"optimizer": {"optimizer": f"{name}:fn"}})
    with pytest.raises(ConfigError) as err:
        RunConfig.from_file(path)
    message = _one_line(err)
    assert "import path" in message and "--allow-imports" in message and str(path) in message
    assert f"--optimizer {name}:fn" in message  # the way to say it on the command line
    assert not flag.exists() and name not in sys.modules


def test_allow_imports_loads_it_and_the_import_happens_only_when_built(tmp_path, marker):
    name, flag = marker
    path = _write(tmp_path / "cfg.yaml", {"optimizer": {"optimizer": f"{name}:fn"}})
    cfg = RunConfig.from_file(path, allow_imports=True)
    assert cfg.optimizer.optimizer == f"{name}:fn" and not flag.exists()  # loading is data
    tx, _ = build_optimizer(cfg.optimizer, total_steps=1)
    assert isinstance(tx, optax.GradientTransformation) and flag.read_text() == "ran"


@pytest.mark.parametrize(
    "value", ["IPython:start_ipython", "this:x", "os:system", "antigravity:fly", "this:"]
)
def test_modules_that_run_code_on_import_are_never_imported(tmp_path, monkeypatch, value):
    module = value.partition(":")[0]
    monkeypatch.delitem(sys.modules, module, raising=False)
    if module == "os":  # always imported: the point is that nothing is called
        module = None
    raw = {"optimizer": {"optimizer": value, "args": {"argv": ["-c", "print('pwned')"]}}}
    path = _write(tmp_path / "cfg.json", raw)
    with pytest.raises(ConfigError, match="import path"):
        RunConfig.from_file(path)
    assert module is None or module not in sys.modules


def test_registered_names_need_no_opt_in(tmp_path):
    path = _write(tmp_path / "cfg.json", {"optimizer": {"optimizer": "momentum"}})
    assert RunConfig.from_file(path).optimizer.optimizer == "momentum"


def _run_folder(tmp_path, optimizer) -> pathlib.Path:
    cfg = RunConfig(out=str(tmp_path / "run"))
    cfg.optimizer.optimizer = optimizer
    out = pathlib.Path(cfg.out)
    out.mkdir(parents=True)
    record = {**cfg.to_dict(), "sources": {"x": "y"}, "data_digest": "abc"}
    (out / "config.json").write_text(json.dumps(record))
    return out


def test_a_run_folder_naming_an_import_path_is_refused_unless_vouched_for(tmp_path, marker):
    name, flag = marker
    out = _run_folder(tmp_path, f"{name}:fn")
    with pytest.raises(ConfigError) as err:
        RunConfig.from_run_folder(out)
    message = _one_line(err)
    assert f"made with --optimizer {name}:fn" in message and "--allow-imports" in message
    with pytest.raises(ConfigError, match=r"not other_mod:fn"):
        RunConfig.from_run_folder(out, optimizer="other_mod:fn")
    with pytest.raises(ConfigError, match="not adam"):
        RunConfig.from_run_folder(out, optimizer="adam")
    assert not flag.exists() and name not in sys.modules
    again = RunConfig.from_run_folder(out, optimizer=f"{name}:fn")  # the flag given again
    assert again.optimizer.optimizer == f"{name}:fn" and again.out == str(out)
    assert RunConfig.from_run_folder(out, allow_imports=True).optimizer.optimizer == f"{name}:fn"
    assert not flag.exists()  # reading the folder imported nothing, even when allowed


def test_a_run_folder_from_python_takes_the_factory_itself(tmp_path):
    out = _run_folder(tmp_path, own_optimizer)
    stored = json.loads((out / "config.json").read_text())["optimizer"]["optimizer"]
    assert stored == optimizer_name(own_optimizer)
    with pytest.raises(ConfigError, match="made with --optimizer"):
        RunConfig.from_run_folder(out)
    cfg = RunConfig.from_run_folder(out, optimizer=own_optimizer)
    assert cfg.optimizer.optimizer is own_optimizer
    assert RunConfig.from_run_folder(_run_folder(tmp_path / "b", "adam")).optimizer.optimizer == (
        "adam"
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "holds no run (no config.json)"),
        (b"\xff\xfe{}", "is not UTF-8 text (byte 0xff on line 1)"),
        (b'{"train": {"steps": 3,}', "is not valid JSON (line 1"),
        (b"", "is not valid JSON (line 1, column 1"),
        (b"[1, 2]", "must hold a mapping of sections"),
        (b"null", "got nothing"),
        ("folder", "is a folder"),
        (b'{"train": {"epochs": true}}', "train.epochs must be a whole number"),
        (b'{"train": {"epoch": 3}}', "unknown field(s) ['epoch'] in [train]"),
    ],
)
def test_a_damaged_config_json_is_one_line_naming_the_file(tmp_path, content, words):
    out = tmp_path / "run"
    out.mkdir()
    if content == "folder":
        (out / "config.json").mkdir()
    elif content is not None:
        (out / "config.json").write_bytes(content)
    with pytest.raises(ConfigError) as err:
        RunConfig.from_run_folder(out)
    message = _one_line(err)
    assert words in message and str(out) in message


# ---- types ----------------------------------------------------------------------------

BAD_TYPES = [  # (raw config, words of the one-line error)
    (
        {"optimizer": {"learning_rate": "1e-3"}},
        "optimizer.learning_rate must be a number, got '1e-3' (a string); write 1e-3 without "
        "quotes",
    ),
    ({"train": {"epochs": True}}, "train.epochs must be a whole number or null, got True"),
    ({"train": {"steps": 3.0}}, "train.steps must be a whole number or null, got 3.0 (a number)"),
    ({"train": {"seed": 2**70}}, "train.seed is too large"),
    ({"train": {"seed": "7"}}, "write 7 without quotes"),
    ({"train": {"remat": "true"}}, "train.remat must be true or false, got 'true'"),
    ({"train": {"monitor": 5}}, "train.monitor must be a string, got 5 (a whole number)"),
    ({"model": {"options": 5}}, "model.options must be a mapping of names to values, got 5"),
    ({"model": {"options": [1, 2]}}, "model.options must be a mapping"),
    ({"optimizer": {"args": [1]}}, "optimizer.args must be a mapping of names to values"),
    ({"optimizer": {"schedule_args": "warmup_steps=3"}}, "optimizer.schedule_args must be a map"),
    ({"optimizer": {"optimizer": 5}}, "optimizer.optimizer must be a name or module:function"),
    ({"optimizer": {"weight_decay": None}}, "optimizer.weight_decay must be a number, got None"),
    ({"optimizer": {"clip_norm": float("nan")}}, "optimizer.clip_norm must be a finite number"),
    ({"optimizer": {"learning_rate": float("inf")}}, "must be a finite number, got inf"),
    ({"data": 5}, "[data] must be a mapping of fields, got 5"),
    ({"data": ["dataset", "digits"]}, "[data] must be a mapping of fields"),
    ({"data": {"batch_size": "64"}}, "data.batch_size must be a whole number, got '64'"),
    ({"data": {"val_fraction": "0.1"}}, "write 0.1 without quotes"),
    ({"data": {"augment": "flip"}}, "data.augment must be a list of strings, got 'flip'"),
    ({"data": {"augment": ["flip", 3]}}, "data.augment must be a list of strings"),
    ({"data": {"batch_growth": [[0, "32"]]}}, "data.batch_growth must be a list of lists of"),
    ({"data": {"batch_growth": [[0, 32, 1]]}}, "data.batch_growth must be [[step, batch_size]"),
    ({"data": {"dataset": None}}, "data.dataset must be a string, got None (null)"),
    ({"out": 5}, "out must be a folder's name, got 5"),
    ({"out": ["runs"]}, "out must be a folder's name"),
    ({"trian": {}}, "unknown section 'trian'"),
    ({"train": {"epoch": 3}}, "unknown field(s) ['epoch'] in [train]"),
]


@pytest.mark.parametrize(("raw", "words"), BAD_TYPES, ids=[w[:40] for _, w in BAD_TYPES])
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_wrongly_typed_value_is_one_line_naming_the_field(tmp_path, raw, words, suffix):
    path = _write(tmp_path / f"cfg{suffix}", raw)
    with pytest.raises(ConfigError) as err:
        RunConfig.from_file(path)
    message = _one_line(err)
    assert message.startswith(f"--config {path}: ") and words in message, message
    assert to_flags(message) == message  # the command line keeps the file's field names


def test_yaml_numbers_are_yaml_1_2s_and_ints_pass_where_floats_are_due(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("optimizer:\n  learning_rate: 1e-3\n  weight_decay: 0\ntrain:\n  steps: 1e3\n")
    with pytest.raises(ConfigError, match=r"train.steps must be a whole number.*write 1000"):
        RunConfig.from_file(path)
    path.write_text("optimizer:\n  learning_rate: 1e-3\n  weight_decay: 0\n  clip_norm: 1\n")
    cfg = RunConfig.from_file(path)
    assert cfg.optimizer.learning_rate == 1e-3 and isinstance(cfg.optimizer.learning_rate, float)
    assert cfg.optimizer.weight_decay == 0 and cfg.optimizer.clip_norm == 1
    path.write_text('optimizer:\n  learning_rate: "1e-3"\n')  # quoted: a string, refused
    with pytest.raises(ConfigError, match="write 1e-3 without quotes"):
        RunConfig.from_file(path)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("cfg.yaml", b"train:\n  steps: [1, 2\n", "is not valid YAML (line 3"),
        ("cfg.yaml", b"train:\n\tsteps: 1\n", "is not valid YAML (line 2"),
        ("cfg.yaml", b"a: !!python/object/apply:os.system ['echo hi']\n", "is not valid YAML"),
        ("cfg.yaml", b"---\na: 1\n---\nb: 2\n", "is not valid YAML"),
        ("cfg.yaml", b"- 1\n- 2\n", "must hold a mapping of sections"),
        ("cfg.yaml", b"", "got nothing"),
        ("cfg.yaml", b"train:\n  steps: 3\n  \xe9: 1\n", "not UTF-8 text (byte 0xe9 on line 3)"),
        ("cfg.json", b'{"train": {"steps": 3}', "is not valid JSON (line 1, column 23"),
        ("cfg.json", b'{"train":\n {"steps": 3,}}', "is not valid JSON (line 2"),
        ("cfg.json", b"\xff\xfe{\x00}\x00", "is not UTF-8 text"),
        ("cfg.cfg", b"train:\n  steps: 3\n", "(a YAML file ends in .yaml)"),
        ("cfg.json", b"[" * 100_000, "nested too deeply"),
        ("missing.json", None, "--config: no file"),
        ("folder.json", "folder", "is a folder, not a file"),
    ],
)
def test_an_unreadable_file_is_one_line_naming_it(tmp_path, name, content, words):
    path = tmp_path / name
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        RunConfig.from_file(path)
    message = _one_line(err)
    assert words in message and name in message, message


def test_a_byte_order_mark_is_fine(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_bytes(b'\xef\xbb\xbf{"train": {"steps": 3}}')
    assert RunConfig.from_file(path).train.steps == 3


def test_validate_checks_a_config_built_in_python():
    cfg = RunConfig()
    cfg.data.augment, cfg.out = ("flip",), pathlib.Path("runs/x")  # a tuple, a Path: fine
    cfg.optimizer.learning_rate, cfg.train.seed = np.float32(0.1), np.int64(3)
    cfg.optimizer.optimizer = own_optimizer
    cfg.validate()
    for section, field, value, words in [
        ("optimizer", "learning_rate", "0.1", "write 0.1 without quotes"),
        ("train", "epochs", True, "train.epochs must be a whole number"),
        ("model", "options", 5, "model.options must be a mapping"),
        ("optimizer", "optimizer", 3.0, "optimizer.optimizer must be a name"),
    ]:
        bad = RunConfig()
        setattr(getattr(bad, section), field, value)
        with pytest.raises(ConfigError, match=words):
            bad.validate()
    bad = RunConfig()
    bad.data = 5
    with pytest.raises(ConfigError, match=r"data must be an optlab\.config\.DataConfig"):
        bad.validate()


# ---- a string where the factory takes a number ----------------------------------------


@pytest.mark.parametrize(
    ("optimizer", "args", "words"),
    [
        ("adam", {"b1": "abc"}, "optimizer.args: adam's b1 takes a number, got 'abc' (text)"),
        ("adam", {"eps": True}, "optimizer.args: adam's eps takes a number, got True"),
        ("momentum", {"mu": "0.9x"}, "momentum's mu takes a number"),
        ("momentum", {"dampening": "x"}, "momentum's dampening takes a number"),  # float | None
    ],
)
def test_text_for_a_numeric_optimizer_argument_is_refused(optimizer, args, words):
    cfg = RunConfig().optimizer
    cfg.optimizer, cfg.args = optimizer, args
    with pytest.raises(ConfigError) as err:
        build_optimizer(cfg, total_steps=10)
    assert words in _one_line(err)
    assert to_flags(str(err.value)).startswith("--opt-arg: ")


@pytest.mark.parametrize(
    ("schedule", "args", "words"),
    [
        ("cosine_decay", {"warmup_steps": "abc"}, "cosine_decay's warmup_steps takes a number"),
        ("cosine_decay", {"steps": "ten"}, "cosine_decay's steps takes a number"),  # no default
        ("exponential_decay", {"rate": 0.5, "staircase": "yes"}, "staircase takes true or false"),
    ],
)
def test_text_for_a_numeric_schedule_argument_is_refused(schedule, args, words):
    cfg = RunConfig().optimizer
    cfg.schedule, cfg.schedule_args = schedule, args
    with pytest.raises(ConfigError) as err:
        build_schedule(cfg, total_steps=10)
    assert words in _one_line(err)
    assert to_flags(str(err.value)).startswith("--schedule-arg: ")


def test_right_values_still_pass():
    cfg = RunConfig().optimizer
    cfg.args = {"b1": 0, "b2": 0.99}  # an int where a float is due
    build_optimizer(cfg, total_steps=10)
    cfg.schedule, cfg.schedule_args = "cosine_decay", {"warmup_steps": 2, "alpha": 0}
    assert callable(build_schedule(cfg, total_steps=10))
    cfg.optimizer, cfg.args = "momentum", {"form": "ema"}  # text where text is due
    build_optimizer(cfg, total_steps=10)


@pytest.mark.parametrize("value", ["evil\nmod:fn", "\x1b[31mred:fn", "a b:c"])
def test_a_hostile_value_stays_one_escaped_line(tmp_path, value):
    path = _write(tmp_path / "cfg.json", {"optimizer": {"optimizer": value}})
    with pytest.raises(ConfigError) as err:
        RunConfig.from_file(path)
    assert "\x1b" not in _one_line(err) and repr(value) in str(err.value)
    with pytest.raises(ConfigError) as err:
        RunConfig.from_run_folder(_run_folder(tmp_path, value))
    assert "\x1b" not in _one_line(err) and repr(value) in str(err.value)
