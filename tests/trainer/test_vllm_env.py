import pytest

from trainer.vllm_env import MARK, patch_source

ORIGINAL = """import torch
import torchvision.extension  # noqa: F401

@torch.library.register_fake("torchvision::nms")
def meta_nms(dets, scores, iou_threshold):
    return dets

@torch.library.register_fake("torchvision::qnms")
def meta_qnms(dets, scores, iou_threshold):
    return dets
"""


def test_every_fake_registration_is_guarded_and_patch_is_idempotent():
    patched = patch_source(ORIGINAL)
    assert "@torch.library.register_fake(" not in patched
    assert patched.count(f"@{MARK}(") == 2
    assert patch_source(patched) == patched
    compile(patched, "_meta_registrations.py", "exec")


def test_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="patch by hand"):
        patch_source("import torch\n")
