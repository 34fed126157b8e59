"""``python _dump_params.py RUN_DIR OUT.npz``: the newest checkpoint's parameters of a run
folder as flat float arrays (run with as many devices as the run's mesh needs)."""

import sys

import jax
import numpy as np

from optlab.train import restore_run

if __name__ == "__main__":
    _, _, state = restore_run(sys.argv[1])
    flat, _ = jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))
    arrays = {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}
    arrays["__step__"] = np.asarray(jax.device_get(state.step))
    np.savez(sys.argv[2], **arrays)
