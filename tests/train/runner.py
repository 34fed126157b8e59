"""Run `optlab train` in a subprocess, optionally killing it at a chosen moment.

``python -m tests.train.runner KILL_AT_SAVE_STEP -- <optlab train flags>``: when
KILL_AT_SAVE_STEP > 0 the process SIGKILLs itself right after orbax has *started* the
asynchronous save of that step (the write is in flight), to test resuming from there; when
it is < 0, right after the save of step -KILL_AT_SAVE_STEP has *finished* (on disk).
"""

import os
import signal
import sys

if __name__ == "__main__":
    kill_at = int(sys.argv[1])
    flags = sys.argv[sys.argv.index("--") + 1 :]
    if kill_at != 0:
        from optlab.train import checkpoint

        original = checkpoint.Checkpointer.save

        def save_then_die(self, step, state, meta, metrics=None):
            saved = original(self, step, state, meta, metrics)
            if step == abs(kill_at):
                if kill_at < 0:
                    self.wait()
                os.kill(os.getpid(), signal.SIGKILL)
            return saved

        checkpoint.Checkpointer.save = save_then_die
    from optlab.cli import main

    sys.exit(main(["train", *flags]))
