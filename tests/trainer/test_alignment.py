"""trainer.alignment: attention patch masks (fake attentions, hand-computed) and image refs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from trainer.alignment import attention_patch_masks, image_reference, last_image_rows

IMG = 9  # image token id of the fake model


class FakeModel:
    """Returns the given attentions; records the call and the training flag it saw."""

    def __init__(self, attentions: tuple[torch.Tensor, ...]) -> None:
        self.attentions, self.training, self.calls = attentions, True, []

    def eval(self) -> None:
        self.training = False

    def train(self, mode: bool = True) -> None:
        self.training = mode

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append((kwargs, self.training))
        return SimpleNamespace(attentions=self.attentions)


def test_last_image_rows() -> None:
    assert last_image_rows(torch.zeros(5, 3), [2, 1, 2]) == [1, 2, 4]
    with pytest.raises(ValueError, match="at least one image"):
        last_image_rows(torch.zeros(1, 3), [0])


def test_mask_uses_the_last_image_and_the_completion_tokens_only() -> None:
    # one sample: [pad, IMG×4 (image A, 2×2 merged from grid 1×4×4), IMG×4 (image B), txt, c0, c1, pad]
    ids = torch.tensor([[0, IMG, IMG, IMG, IMG, IMG, IMG, IMG, IMG, 5, 7, 7, 0]])
    length = ids.shape[1]
    completion_mask = torch.tensor([[1, 1, 0]])  # T = 3, last completion slot is padding
    p = length - 3
    att = torch.zeros(1, 2, length, length)  # (B, H, L, L)
    # image B patches are key positions 5..8; completion queries are p, p+1 (not p+2)
    att[0, 0, p, 5:9] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    att[0, 1, p + 1, 5:9] = torch.tensor([0.3, 0.2, 0.1, 0.0])
    att[0, :, p + 2, 5:9] = torch.tensor([100.0, 0.0, 0.0, 0.0])  # padded slot: must not count
    att[0, :, p, 1:5] = torch.tensor([0.0, 0.0, 0.0, 50.0])  # image A: must not count
    model = FakeModel((att,))
    inputs = {"input_ids": ids, "image_grid_thw": torch.tensor([[1, 4, 4], [1, 4, 4]])}
    (mask,) = attention_patch_masks(
        model, inputs, completion_mask, image_token_id=IMG, num_images=[2], threshold=0.4
    )
    # mean over 2 heads × 2 completion queries: ([.1, .2, .3, .4] + [.3, .2, .1, 0]) / 4
    raw = (torch.tensor([0.1, 0.2, 0.3, 0.4]) + torch.tensor([0.3, 0.2, 0.1, 0.0])) / 4
    assert torch.allclose(raw, torch.full((4,), 0.1))  # uniform → scaled to all ones
    assert mask == {"grid": [[1.0, 1.0], [1.0, 1.0]], "threshold": 0.4}
    ((kwargs, training),) = model.calls
    assert kwargs["output_attentions"] and not training and model.training  # eval, then restored

    att[0, 1, p + 1, 5:9] = 0.0  # now only head 0 / query p: scores ∝ [0.1, 0.2, 0.3, 0.4]
    (mask,) = attention_patch_masks(
        model, inputs, completion_mask, image_token_id=IMG, num_images=[2], keep_fraction=0.5
    )
    assert mask == {"grid": [[0.0, 0.0], [1.0, 1.0]], "threshold": None}
    (mask,) = attention_patch_masks(
        model, inputs, completion_mask, image_token_id=IMG, num_images=[2], threshold=0.5
    )
    assert torch.allclose(torch.tensor(mask["grid"]), torch.tensor([[0.0, 1 / 3], [2 / 3, 1.0]]))


def test_empty_completion_gets_no_mask_and_missing_weights_raise() -> None:
    ids = torch.tensor([[IMG, IMG, IMG, IMG, 5, 0]])
    inputs = {"input_ids": ids, "image_grid_thw": torch.tensor([[1, 4, 4]])}
    att = torch.rand(1, 1, 6, 6)
    out = attention_patch_masks(
        FakeModel((att,)), inputs, torch.tensor([[0]]), image_token_id=IMG, num_images=[1]
    )
    assert out == [None]
    with pytest.raises(RuntimeError, match="eager"):
        attention_patch_masks(
            FakeModel(()), inputs, torch.tensor([[1]]), image_token_id=IMG, num_images=[1]
        )


def test_image_reference_modes(tmp_path: Any) -> None:
    from PIL import Image

    assert image_reference(str(tmp_path / "a" / "b.png"), None, mode="path", root=tmp_path) == (
        "a/b.png"
    )
    assert image_reference(None, None, mode="path", root=tmp_path) is None
    with pytest.raises(ValueError, match="outside"):
        image_reference("/etc/x.png", None, mode="path", root=tmp_path)
    ref = image_reference(None, Image.new("RGB", (2, 2)), mode="base64", root=None)
    assert ref is not None and ref.startswith("iVBOR")  # PNG signature in base64
