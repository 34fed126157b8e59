"""The language-model path of the trainer end to end, through the CLI (issue 12).

Bad input: one line ``optlab: error: ...`` naming the flag, exit 2, and nothing written in
``--out`` (absent, or byte for byte as before) nor left half-made in the token cache.
Known answers: a tiny GPT run's summary (bits per byte recomputed from ``meta.json``), the
initial loss of the byte tokenizer (ln 256), and ``optlab generate`` (the prompt first,
deterministic for a seed, the same text as ``optlab.train.generate.generate``).
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
import random

import pytest

from optlab import cli
from optlab.data._corpus import split_of

TINY = [
    "--model", "gpt", "--model-arg", "n_layer=1", "--model-arg", "n_head=2",
    "--model-arg", "d_model=32", "--model-arg", "block_size=16", "--batch-size", "4",
    "--no-progress",
]  # fmt: skip
# the LM recipe warms up for 100 steps (cosine_decay needs more steps than that)
RUN = ["--steps", "102", "--eval-every", "51", "--log-every", "51", "--checkpoint-every", "51"]


def write_corpus(root: pathlib.Path, per_split=(6, 2, 2), lines: int = 30) -> pathlib.Path:
    """``.py``-like files named so that `split_of` puts ``per_split`` files in train, val and
    test (a split is never empty)."""
    root.mkdir(parents=True, exist_ok=True)
    need = dict(zip(("train", "val", "test"), per_split, strict=True))
    i = 0
    while any(need.values()):
        name, i = f"mod_{i}.py", i + 1
        split = split_of(name)
        if need[split]:
            need[split] -= 1
            rng = random.Random(i)
            body = [f"def f{j}(x):\n    return x * {rng.randint(0, 99)}\n\n" for j in range(lines)]
            (root / name).write_text("".join(body))
    return root


def snapshot(path: pathlib.Path) -> dict | None:
    """Every file under ``path`` with its size and SHA-256 (None: ``path`` is absent)."""
    if not path.exists():
        return None
    return {
        str(f.relative_to(path)): (f.stat().st_size, hashlib.sha256(f.read_bytes()).hexdigest())
        for f in sorted(path.rglob("*"))
        if f.is_file()
    }


def leftovers(cache: pathlib.Path) -> list[str]:
    """Half-made token folders in the cache (a failed prepare must remove its own)."""
    tokens = cache / "tokens"
    return sorted(p.name for p in tokens.iterdir() if ".tmp" in p.name) if tokens.exists() else []


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optlab: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A token cache of this module's own (``OPTLAB_CACHE``), shared by its runs."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "src")


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory, cache, corpus):
    """A finished tiny GPT run on the byte tokenizer (about 5 s)."""
    out = tmp_path_factory.mktemp("gpt") / "run"
    code = cli.main(["train", *TINY, *RUN, "--dataset", "text", "--data-dir", str(corpus),
                     "--out", str(out)])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clf") / "run"
    code = cli.main(["train", "--dataset", "digits", "--model", "mlp", "--model-arg",
                     "widths=[8]", "--steps", "3", "--batch-size", "16", "--no-progress",
                     "--out", str(out)])  # fmt: skip
    assert code == 0 and (out / "checkpoints").is_dir()
    return out


# ---------------------------------------------------------------- bad input: optlab train


def _corpus_case(kind: str, tmp_path: pathlib.Path, corpus: pathlib.Path) -> pathlib.Path:
    if kind == "missing":
        return tmp_path / "no_such_corpus"
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "empty_folder":
        return folder
    if kind == "empty_files":  # files, but no text in them
        (folder / "a.py").write_text("")
        (folder / "b.py").write_text("")
        return folder
    for f in corpus.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    bad = {"nul_byte": b"x = 1\x00\n", "invalid_utf8": b"s = '\xff\xfe caf\xe9'\n"}[kind]
    (folder / "zz_binary.py").write_bytes(bad)
    return folder


@pytest.mark.parametrize(
    "kind, needles",
    [
        ("empty_folder", ("--data-dir", "no text files")),
        ("empty_files", ("--data-dir", "empty")),
        ("missing", ("--data-dir", "does not exist")),
        ("nul_byte", ("--data-dir", "zz_binary.py", "not UTF-8")),
        ("invalid_utf8", ("--data-dir", "zz_binary.py", "not UTF-8")),
    ],
)
def test_bad_corpus_is_one_line_and_writes_nothing(tmp_path, capsys, cache, corpus, kind, needles):
    src = _corpus_case(kind, tmp_path, corpus)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "train", *TINY, *RUN, "--dataset", "text", "--data-dir", src,
                           "--out", out)  # fmt: skip
    assert_one_line_error(code, err, *needles)
    assert not out.exists()
    assert leftovers(cache) == []


@pytest.mark.parametrize(
    "extra, needles",
    [
        # val and test hold ~1,850 tokens each, train ~5,500: longer than the smallest split
        (["--model-arg", "block_size=2000"], ("block_size=2000", "split", "--model-arg")),
        (["--model-arg", "block_size=0"], ("--model-arg block_size=0", ">= 1")),
        (["--model-arg", "block_size=abc"], ("--model-arg block_size='abc'",)),
        (["--model-arg", "n_head=3"], ("n_head", "d_model")),
        (["--model-arg", "n_head=0"], ("n_head",)),
        (["--model-arg", "vocab_size=100"], ("vocab_size", "256")),
        (["--tokenizer", "bpe", "--vocab-size", "100"], ("--vocab-size", "257")),
        (["--tokenizer", "bpe", "--vocab-size", "256"], ("--vocab-size", "257")),
        (["--tokenizer", "byte", "--vocab-size", "300"], ("--vocab-size", "256")),
        (["--mode", "full"], ("--mode",)),
    ],
    ids=[
        "block_size_longer_than_val",
        "block_size_0",
        "block_size_abc",
        "n_head_3_of_32",
        "n_head_0",
        "model_vocab_too_small",
        "bpe_vocab_100",
        "bpe_vocab_256",
        "byte_vocab_300",
        "full_batch_mode",
    ],
)
def test_bad_model_or_tokenizer_is_one_line_and_writes_nothing(
    tmp_path, capsys, cache, corpus, extra, needles
):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "train", *TINY, *RUN, "--dataset", "text", "--data-dir",
                           corpus, "--out", out, *extra)  # fmt: skip
    assert_one_line_error(code, err, *needles)
    assert not out.exists()
    assert leftovers(cache) == []


def test_text_dataset_without_data_dir(tmp_path, capsys, cache):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "train", *TINY, *RUN, "--dataset", "text", "--out", out)
    assert_one_line_error(code, err, "--data-dir")
    assert not out.exists()


@pytest.mark.parametrize(
    "case", ["empty_folder", "missing_folder", "truncated_bin", "meta_not_json", "meta_no_dtype"]
)
def test_tokens_folder_not_prepared(tmp_path, capsys, cache, corpus, case):
    folder = tmp_path / "tokens"
    if case == "empty_folder":
        folder.mkdir()
    elif case == "truncated_bin":
        assert cli.main(["prepare-text", str(corpus), "--out", str(folder)]) == 0
        capsys.readouterr()
        val = folder / "val.bin"
        val.write_bytes(val.read_bytes()[:-2])
    elif case.startswith("meta"):
        assert cli.main(["prepare-text", str(corpus), "--out", str(folder)]) == 0
        capsys.readouterr()
        meta = folder / "meta.json"
        if case == "meta_not_json":
            meta.write_text("{not json")
        else:
            meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items()
                                        if k != "dtype"}))  # fmt: skip
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "train", *TINY, *RUN, "--dataset", "tokens", "--data-dir",
                           folder, "--out", out)  # fmt: skip
    needle = "val.bin" if case == "truncated_bin" else "meta.json"
    if case == "meta_no_dtype":
        needle = "dtype"
    assert_one_line_error(code, err, "--data-dir", needle)
    assert not out.exists()


@pytest.mark.parametrize(
    "extra",
    [["--tokenizer", "bpe", "--vocab-size", "300"], ["--tokenizer", "bpe"]],
    ids=["byte_to_bpe_300", "byte_to_bpe_default"],
)
def test_resume_with_another_tokenizer_is_refused_and_changes_nothing(
    capsys, cache, corpus, gpt_run, extra
):
    before = snapshot(gpt_run)
    code, _, err = run_cli(capsys, "train", *TINY, *RUN, "--dataset", "text", "--data-dir",
                           corpus, "--out", gpt_run, *extra)  # fmt: skip
    assert_one_line_error(code, err, "--out", "--tokenizer")
    assert snapshot(gpt_run) == before
    assert leftovers(cache) == []


# ------------------------------------------------------------ bad input: generate, prepare


def test_generate_on_a_classifier_run(capsys, classifier_run):
    before = snapshot(classifier_run)
    code, out, err = run_cli(capsys, "generate", "--run", classifier_run, "--prompt", "def ")
    assert_one_line_error(code, err, "--run", "not a language model")
    assert out == ""
    assert snapshot(classifier_run) == before


@pytest.mark.parametrize("case", ["no_checkpoint", "empty_folder", "missing_folder"])
def test_generate_without_a_checkpoint(tmp_path, capsys, gpt_run, case):
    folder = tmp_path / "run"
    if case != "missing_folder":
        folder.mkdir()
    if case == "no_checkpoint":  # a run folder whose training never saved
        (folder / "config.json").write_bytes((gpt_run / "config.json").read_bytes())
    before = snapshot(folder)
    code, out, err = run_cli(capsys, "generate", "--run", folder)
    assert_one_line_error(code, err, "--run")
    assert out == ""
    assert snapshot(folder) == before


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--max-tokens", "0"], "--max-tokens"),
        (["--temperature", "-1"], "--temperature"),
        (["--top-k", "0"], "--top-k"),
    ],
)
def test_generate_bad_sampling_flags(capsys, gpt_run, extra, flag):
    before = snapshot(gpt_run)
    code, out, err = run_cli(capsys, "generate", "--run", gpt_run, *extra)
    assert_one_line_error(code, err, flag)
    assert out == "" and snapshot(gpt_run) == before


@pytest.mark.parametrize(
    "case, needles",
    [
        ("missing", ("SRC", "does not exist")),
        ("binary", ("SRC", "not UTF-8")),
        ("empty_folder", ("SRC", "no text files")),
        ("bpe_vocab_10", ("--vocab-size", "257")),
        ("byte_vocab_512", ("--vocab-size", "256")),
    ],
)
def test_prepare_text_bad_input(tmp_path, capsys, corpus, case, needles):
    src, extra = corpus, []
    if case == "missing":
        src = tmp_path / "nope"
    elif case == "binary":
        src = tmp_path / "blob.txt"
        src.write_bytes(bytes(range(256)))
    elif case == "empty_folder":
        src = tmp_path / "empty"
        src.mkdir()
    elif case == "bpe_vocab_10":
        extra = ["--tokenizer", "bpe", "--vocab-size", "10"]
    else:
        extra = ["--vocab-size", "512"]
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "prepare-text", src, "--out", out, *extra)
    assert_one_line_error(code, err, *needles)
    assert not out.exists()


def test_prepare_text_unknown_tokenizer(tmp_path, capsys, corpus):
    # argparse's own choice error (usage, then one error line naming the flag), exit 2
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "prepare-text", corpus, "--out", out, "--tokenizer", "wordpiece")
    assert code == 2
    assert "--tokenizer" in err.strip().splitlines()[-1] and "wordpiece" in err
    assert not out.exists()


# ------------------------------------------------------------------------- known answers


def test_summary_of_a_tiny_gpt_run(cache, gpt_run):
    summary = json.loads((gpt_run / "summary.json").read_text())
    for key in ("val_loss", "test_loss", "val_bits_per_byte", "test_bits_per_byte",
                "tokens_per_second", "mfu", "train_loss"):  # fmt: skip
        value = summary[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, value)
    assert summary["steps"] == 102
    assert summary["mfu"] < 1
    assert summary["val_loss"] < math.log(256)  # it learned something in 102 steps
    meta_files = list((cache / "tokens").glob("text-byte-*/meta.json"))
    assert len(meta_files) == 1
    meta = json.loads(meta_files[0].read_text())
    for split in ("val", "test"):
        stats = meta["splits"][split]
        bytes_per_token = stats["bytes"] / stats["tokens"]
        want = summary[f"{split}_loss"] / math.log(2) / bytes_per_token
        assert summary[f"{split}_bits_per_byte"] == pytest.approx(want, rel=1e-9), split
        assert summary[f"{split}_perplexity"] == pytest.approx(math.exp(summary[f"{split}_loss"]))
    # the summary names the corpus its numbers are of: the prepared folder's source
    assert summary["corpus"] == meta["source"] and meta["source"]["name"] == "folder"
    # the run folder keeps the tokenizer that made its tokens
    assert snapshot(gpt_run / "tokenizer") == snapshot(meta_files[0].parent / "tokenizer")


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_initial_loss_is_log_256_for_the_byte_tokenizer(cache, corpus, tmp_path, tie):
    # GPT-2's N(0, 0.02) init gives near-zero logits: a near-uniform next-byte distribution
    from optlab.cli._flags import config_from_args
    from optlab.train.loop import evaluate
    from optlab.train.setup import build_setup

    tie_flag = f"tie_embeddings={str(tie).lower()}"
    args = cli.parser().parse_args(["train", *TINY, *RUN, "--dataset", "text", "--data-dir",
                                    str(corpus), "--out", str(tmp_path / "out"),
                                    "--model-arg", tie_flag])  # fmt: skip
    setup = build_setup(config_from_args(args))
    metrics = evaluate(setup, setup.init_state(), "val")
    print(f"initial val loss ({'tied' if tie else 'untied'}): {metrics['val_loss']:.4f}")
    # Untied: 5.546 against ln 256 = 5.545. Tied, the head reads the input's own embedding
    # back (logit ≈ |wte[x]|·|LN(h)| ≈ 0.6 for the current byte, ~0.1 for the others), so
    # repeats (indentation, blank lines) start likelier: 5.49 here.
    assert metrics["val_loss"] == pytest.approx(math.log(256), abs=0.1 if tie else 0.01)
    assert not (tmp_path / "out").exists()  # building a setup writes no run folder


def test_generate_starts_with_the_prompt_and_is_deterministic(capsys, gpt_run):
    from optlab.train.generate import generate

    flags = ["generate", "--run", gpt_run, "--prompt", "def ", "--max-tokens", "24"]
    texts = {}
    for seed in (0, 0, 1):
        code, out, err = run_cli(capsys, *flags, "--seed", seed)
        assert code == 0, err
        texts.setdefault(seed, []).append(out)
    first = texts[0][0]
    assert first.startswith("def ") and first.endswith("\n")
    assert len(first.encode()) > len("def ") + 1  # something sampled (bytes: 24 at most)
    assert texts[0][0] == texts[0][1]  # the same seed, the same text
    assert texts[1][0] != first  # another seed, another sample
    python = generate(gpt_run, "def ", max_tokens=24, seed=0)
    assert python + "\n" == first  # the CLI prints exactly what the Python API returns
    greedy = [generate(gpt_run, "def ", max_tokens=8, temperature=0, seed=s) for s in (0, 5)]
    assert greedy[0] == greedy[1]  # temperature 0 is greedy: no seed matters
