"""The pystdlib corpus (no tests, stable split and fingerprint) and text-file checks."""

import collections

import pytest

from optlab.data._corpus import (
    corpus_fingerprint,
    pystdlib_files,
    pystdlib_root,
    split_of,
    text_files,
)
from optlab.errors import ConfigError


def test_pystdlib_finds_many_files_and_no_test_folders():
    files = pystdlib_files()
    assert len(files) > 100
    assert list(files) == sorted(files) and len(set(files)) == len(files)
    assert all(f.endswith(".py") for f in files)
    banned = {"test", "tests", "idle_test", "site-packages", "dist-packages"}
    assert not [f for f in files if banned & set(f.split("/")[:-1])]
    assert "json/decoder.py" in files and "os.py" in files
    assert (pystdlib_root() / files[0]).is_file()


def test_split_is_deterministic_and_roughly_90_5_5():
    files = pystdlib_files()
    first = [split_of(f) for f in files]
    assert first == [split_of(f) for f in files]
    counts = collections.Counter(first)
    n = len(files)
    assert abs(counts["train"] / n - 0.90) < 0.05
    assert 0.01 < counts["val"] / n < 0.10 and 0.01 < counts["test"] / n < 0.10
    # a known answer, computed by hand from sha256("os.py")
    import hashlib

    u = int(hashlib.sha256(b"os.py").hexdigest()[:16], 16) / 2**64
    assert split_of("os.py") == ("train" if u < 0.9 else "val" if u < 0.95 else "test")
    assert split_of("os.py", (0.0 + 1e-12, 1 - 1e-12, 0.0)) == "val"


def test_fingerprint_is_stable_and_names_python():
    a, b = corpus_fingerprint(), corpus_fingerprint()
    assert a == b
    assert a["files"] == len(pystdlib_files()) and len(a["digest"]) == 64
    import platform

    assert a["python"] == platform.python_version()


def test_text_files_of_a_folder_are_recursive_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("zz")
    (tmp_path / "a.txt").write_text("aa")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "index").write_bytes(b"\x00\xff")  # hidden: skipped, not refused
    assert text_files(tmp_path) == [tmp_path / "a.txt", tmp_path / "b" / "z.txt"]
    assert text_files(tmp_path / "a.txt") == [tmp_path / "a.txt"]


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("missing", "does not exist"),
        ("empty_folder", "holds no text files"),
        ("empty_file", "is empty"),
        ("nul", "bin.dat is not UTF-8 text"),
        ("latin1", "bin.dat is not UTF-8 text"),
        ("split_utf8_at_end", "bin.dat is not UTF-8 text"),
    ],
)
def test_bad_corpora_are_one_line_config_errors(tmp_path, case, match):
    src = tmp_path / "src"
    src.mkdir()
    if case not in ("empty_folder", "empty_file"):
        (src / "ok.txt").write_text("fine text\n")
    payload = {"nul": b"abc\x00def", "latin1": "caf\xe9".encode("latin-1")}
    payload["split_utf8_at_end"] = "ok é".encode()[:-1]
    if case in payload:
        (src / "bin.dat").write_bytes(payload[case])
    if case == "empty_file":
        (src / "e.txt").write_text("")
    target = tmp_path / "nowhere" if case == "missing" else src
    with pytest.raises(ConfigError, match=match) as err:
        text_files(target, flag="SRC")
    assert str(err.value).startswith("SRC: ") and "\n" not in str(err.value)
