"""Tokenizers: bytes round-trip exactly; BPE round-trips text and reloads to the same ids."""

import json

import numpy as np
import pytest

from optlab.data._corpus import pystdlib_root
from optlab.data._tokenizers import (
    EOD_TOKEN,
    BPETokenizer,
    ByteTokenizer,
    Tokenizer,
    check_tokenizer_name,
    load_tokenizer,
    train_bpe,
)
from optlab.errors import ConfigError

FILES = ["json/decoder.py", "json/encoder.py", "textwrap.py", "string.py"]
ODD_TEXT = "héllo <|endoftext|> wörld \x01\t☃ 𝄞\r\n  trailing  "


@pytest.fixture(scope="module")
def texts():
    return [(pystdlib_root() / f).read_text("utf-8") for f in FILES]


@pytest.fixture(scope="module")
def bpe(texts):
    return train_bpe(texts, 512)


def test_byte_tokenizer_round_trips_all_256_values_and_random_bytes():
    tok = ByteTokenizer()
    every = bytes(range(256))
    ids = tok.encode_bytes(every)
    assert ids.dtype == np.int32 and ids.tolist() == list(range(256))
    assert tok.decode_bytes(ids) == every
    data = np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    assert tok.decode_bytes(tok.encode_bytes(data)) == data
    assert tok.decode(tok.encode(ODD_TEXT)) == ODD_TEXT
    assert tok.decode([0xFF, 104]) == "\ufffdh"  # invalid UTF-8 is replaced, not raised
    assert isinstance(tok, Tokenizer)
    assert tok.to_json() == {"name": "byte", "vocab_size": 256, "eod_id": 0}


def test_byte_tokenizer_rejects_ids_outside_a_byte():
    with pytest.raises(ValueError, match="0, 256"):
        ByteTokenizer().decode_bytes([256])


def test_bpe_round_trips_the_corpus_and_unseen_text(bpe, texts):
    assert bpe.vocab_size == 512 and bpe.eod_id == 0
    for text in [*texts, ODD_TEXT, "".join(map(chr, range(1, 0x3000, 7)))]:
        ids = bpe.encode(text)
        assert ids.dtype == np.int32 and ids.max() < bpe.vocab_size
        assert bpe.decode(ids) == text
    assert len(bpe.encode(texts[0])) < 0.6 * len(texts[0].encode())  # it did learn merges
    # the special string inside a document is text, not the end-of-document id
    assert bpe.eod_id not in bpe.encode(EOD_TOKEN).tolist()


def test_bpe_save_load_gives_identical_ids(bpe, texts, tmp_path):
    bpe.save(tmp_path / "tok")
    assert json.loads((tmp_path / "tok" / "tokenizer_meta.json").read_text()) == bpe.to_json()
    again = load_tokenizer(tmp_path / "tok")
    assert isinstance(again, BPETokenizer) and again.vocab_size == bpe.vocab_size
    for text in [*texts, ODD_TEXT]:
        np.testing.assert_array_equal(again.encode(text), bpe.encode(text))


def test_byte_tokenizer_save_load(tmp_path):
    ByteTokenizer().save(tmp_path)
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        ("missing", "tokenizer_meta.json is missing"),
        ("garbage", "cannot read"),
        ("unknown", "names 'wordpiece'"),
        ("bpe_without_json", "tokenizer.json is missing"),
    ],
)
def test_load_tokenizer_errors_are_one_line(tmp_path, setup, match):
    if setup == "garbage":
        (tmp_path / "tokenizer_meta.json").write_text("{not json")
    elif setup == "unknown":
        (tmp_path / "tokenizer_meta.json").write_text('{"name": "wordpiece"}')
    elif setup == "bpe_without_json":
        (tmp_path / "tokenizer_meta.json").write_text('{"name": "bpe"}')
    with pytest.raises(ConfigError, match=match) as err:
        load_tokenizer(tmp_path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [100, 256, 2.5, True])
def test_bpe_vocab_size_too_small_names_the_flag(bad):
    with pytest.raises(ConfigError, match="--vocab-size"):
        train_bpe(["abc"], bad)


def test_unknown_tokenizer_names_the_flag():
    with pytest.raises(ConfigError, match="--tokenizer must be one of byte, bpe"):
        check_tokenizer_name("sentencepiece")
