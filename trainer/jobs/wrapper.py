"""``python -m trainer.jobs.wrapper RUN_DIR -- CMD...``: run one training job and record its end.

The trainer service starts this wrapper in a new session (its own process group); the wrapper
starts ``CMD`` in the same group, writes ``wrapper.pid`` at once and ``exit_code`` (atomically)
when ``CMD`` ends. A restarted service re-attaches to a job whose wrapper is still alive and
reads its outcome from ``exit_code`` when it finishes — the job's state is never lost. SIGTERM
to the group (cancel) reaches both; the wrapper waits for ``CMD`` and records its code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m trainer.jobs.wrapper RUN_DIR -- CMD...\n")
        return 2
    run_dir, cmd = Path(argv[0]), argv[2:]
    write_atomic(run_dir / "wrapper.pid", str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: None)  # the child gets it too; we wait for it
    with open(run_dir / "train.log", "ab") as log:
        child = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        code = child.wait()
    write_atomic(run_dir / "exit_code", str(code))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
