"""prepare_text / prepare_pystdlib write nanoGPT memmaps holding exactly the tokenizer's ids."""

import json

import numpy as np
import pytest

from optlab.data._corpus import split_of
from optlab.data._tokenizers import ByteTokenizer, load_tokenizer
from optlab.data._tokens import open_tokens, prepare_pystdlib, prepare_text, token_dtype
from optlab.errors import ConfigError

DOCS = {f"d{i:02d}/f{i}.txt": f"document {i}: " + "ab\u00e9c " * (i + 3) + "\n" for i in range(40)}


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "src"
    for rel, text in DOCS.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text, encoding="utf-8")
    return src


def expected_stream(tok, docs):
    parts = []
    for text in docs:
        parts += [*tok.encode(text).tolist(), tok.eod_id]
    return parts


@pytest.mark.parametrize("tokenizer", ["byte", "bpe"])
def test_folder_bins_hold_the_documents_joined_with_eod(folder, tmp_path, tokenizer):
    vocab = 300 if tokenizer == "bpe" else None
    out = prepare_text(folder, tmp_path / "out", tokenizer=tokenizer, vocab_size=vocab)
    data = open_tokens(out)
    tok = data.tokenizer()
    assert tok.name == tokenizer and data.meta["tokenizer"] == tok.to_json()
    assert data.meta["dtype"] == "uint16" and data.train.dtype == np.uint16
    assert isinstance(data.train, np.memmap) and data.train.mode == "r"
    for split in ("train", "val", "test"):
        docs = [text for rel, text in sorted(DOCS.items()) if split_of(rel) == split]
        want = expected_stream(tok, docs)
        assert data.split(split).tolist() == want
        counts = data.meta["splits"][split]
        assert counts == {
            "tokens": len(want),
            "bytes": sum(len(d.encode()) for d in docs),
            "documents": len(docs),
        }
    assert sum(data.meta["splits"][s]["documents"] for s in ("train", "val", "test")) == 40
    assert data.meta["source"]["files"] == 40 and data.meta["source"]["name"] == "folder"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp left


def test_one_file_is_split_by_position(tmp_path):
    text = "".join(f"line {i} é\n" for i in range(200))
    (tmp_path / "one.txt").write_text(text, encoding="utf-8")
    data = open_tokens(prepare_text(tmp_path / "one.txt", tmp_path / "out"))
    cut1, cut2 = round(len(text) * 0.9), round(len(text) * 0.95)
    tok = ByteTokenizer()
    for split, part in [("train", text[:cut1]), ("val", text[cut1:cut2]), ("test", text[cut2:])]:
        assert data.split(split).tolist() == expected_stream(tok, [part])
        assert data.meta["splits"][split]["documents"] == 1
    assert (
        tok.decode(np.asarray(data.train[:-1]))
        + tok.decode(data.val[:-1])
        + tok.decode(data.test[:-1])
        == text
    )


def test_pystdlib_prepare_records_the_fingerprint(tmp_path, monkeypatch):
    from optlab.data import _corpus

    few = ("json/decoder.py", "json/encoder.py", "textwrap.py", "string.py", "os.py")
    monkeypatch.setattr(_corpus, "pystdlib_files", lambda: few)
    out = prepare_pystdlib(tmp_path / "out")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"]["name"] == "pystdlib" and meta["source"]["files"] == len(few)
    assert sum(meta["splits"][s]["documents"] for s in ("train", "val", "test")) == len(few)
    data = open_tokens(out)
    texts = [(_corpus.pystdlib_root() / f).read_text() for f in few if split_of(f) == "train"]
    assert data.train.tolist() == expected_stream(ByteTokenizer(), texts)


def test_dtype_rule():
    assert token_dtype(256) == np.uint16 and token_dtype(65536) == np.uint16
    assert token_dtype(65537) == np.uint32 and token_dtype(50304) == np.uint16


def test_tokenizer_folder_is_saved_and_reloads(folder, tmp_path):
    out = prepare_text(folder, tmp_path / "out", tokenizer="bpe", vocab_size=280)
    tok = load_tokenizer(out / "tokenizer")
    assert tok.vocab_size == json.loads((out / "meta.json").read_text())["vocab_size"] <= 280


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("missing", "SRC: .* does not exist"),
        ("empty_folder", "SRC: .* holds no text files"),
        ("binary", "SRC: .*blob.bin is not UTF-8 text"),
        ("tokenizer", "--tokenizer must be one of"),
        ("byte_vocab", "--vocab-size is 256 for --tokenizer byte"),
        ("bad_splits", "splits must be three fractions"),
    ],
)
def test_bad_input_is_a_one_line_error_and_writes_nothing(folder, tmp_path, case, match):
    src, kwargs = folder, {}
    if case == "missing":
        src = tmp_path / "missing"
    elif case == "empty_folder":
        src = tmp_path / "empty"
        src.mkdir()
    elif case == "binary":
        (folder / "blob.bin").write_bytes(bytes(range(256)))
    elif case == "tokenizer":
        kwargs = {"tokenizer": "words"}
    elif case == "byte_vocab":
        kwargs = {"vocab_size": 512}
    else:
        kwargs = {"splits": (0.5, 0.5, 0.5)}
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=match) as err:
        prepare_text(src, out, **kwargs)
    assert "\n" not in str(err.value)
    assert not out.exists()


@pytest.mark.parametrize("case", ["no_meta", "truncated", "missing_bin"])
def test_open_tokens_refuses_a_broken_folder(folder, tmp_path, case):
    out = prepare_text(folder, tmp_path / "out")
    if case == "no_meta":
        (out / "meta.json").unlink()
    elif case == "truncated":
        data = (out / "train.bin").read_bytes()
        (out / "train.bin").write_bytes(data[:-2])
    else:
        (out / "val.bin").unlink()
    match = {"no_meta": "meta.json is missing", "truncated": "train.bin should hold"}
    with pytest.raises(ConfigError, match=match.get(case, "val.bin should hold.*missing")):
        open_tokens(out)
