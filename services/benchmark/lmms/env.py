"""Make ``.venv-lmms`` usable and prove it (``make lmms-env`` runs this last).

    .venv-lmms/bin/python -m services.benchmark.lmms.env

Two problems of lmms-eval 0.7.3 beside a CPU torch, and what is done about each:

* **torchvision.** lmms-eval requires torchvision, and PyPI's torchvision wheels are CUDA builds:
  next to the CPU torch 2.13 their ``_C.so`` does not load, and ``import torchvision`` then
  fails in ``_meta_registrations.py`` ("operator torchvision::nms does not exist"), which
  registers fake kernels for those ops unconditionally. The Makefile installs torchvision
  0.28.0, the release built for torch 2.13 (the newest, 0.29, would replace the CPU torch with
  a CUDA torch 2.14), and this module applies the same guard as the vLLM venv
  (:func:`trainer.vllm_env.patch_source`): the fake kernels are registered only when the C++
  ops loaded. Qwen2-VL's processors need only torchvision's Python transforms.
* **decord.** lmms-eval's ``qwen2_vl`` model imports ``decord`` at module level, though only
  its video inputs use it; decord is in lmms-eval's ``video-legacy`` extra, which the Makefile
  installs (the real decord 0.6.0 wheel; no stand-in).

Then it checks what ``prl bench lmms`` needs: torchvision, decord, lmms-eval and its
``qwen2_vl`` model class import, and prints their versions as one JSON line (exit code 1 and
the reason otherwise).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from importlib import metadata
from pathlib import Path


def patch_torchvision() -> Path:
    """Guard torchvision's fake-op registrations (idempotent); returns the patched file."""
    from trainer.vllm_env import patch_source

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise RuntimeError("torchvision is not installed in this venv; rerun `make lmms-env`")
    path = Path(spec.origin).parent / "_meta_registrations.py"
    path.write_text(patch_source(path.read_text()))
    return path


def check(backend: str = "qwen2_vl") -> dict[str, str]:
    """Import what an lmms-eval run on ``backend`` needs; their versions."""
    import decord  # noqa: F401  (lmms-eval's qwen2_vl imports it at module level)
    import torchvision  # noqa: F401
    from lmms_eval.models import get_model

    get_model(backend)
    names = ("torch", "torchvision", "decord", "lmms_eval", "transformers", "filelock")
    return {n: metadata.version(n) for n in names}


def main() -> int:
    try:
        patched = patch_torchvision()
        versions = check()
    except Exception as exc:
        sys.stderr.write(f"lmms venv check failed: {type(exc).__name__}: {exc}\n")
        return 1
    sys.stdout.write(json.dumps({"patched": str(patched), **versions}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
