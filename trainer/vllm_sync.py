"""Weight sync from the training model into a colocated vLLM engine, on GPU *and* CPU backends.

TRL 1.16's ``VLLMGeneration.sync_weights`` (colocate mode) pushes each parameter through
``driver_worker.model_runner.model.load_weights([(name, param)])``. On vLLM's CPU backend that
raises ``AssertionError: Attempted to load weight ... into parameter (torch.Size([0]))``: the
CPU backend pre-packs every Linear weight for oneDNN and leaves an empty Parameter behind, so
TRL's loop half-updates the model (norms and embeddings load, Linear weights do not).

:func:`colocate_sync` keeps TRL's per-tensor path on GPU and, on CPU, hands the full set of
checkpoint-named tensors to vLLM's layer-wise ``reload_weights`` (which restores the kernel
format, loads and re-packs). Both end with the encoder-cache and prefix-cache resets; without
the encoder-cache reset the next image request fails with "Encoder cache miss".
Server mode (``trl vllm-serve``) is left to TRL: its NCCL/HTTP transfer does not touch the
packed layout.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterable
from typing import Any

import torch

log = logging.getLogger(__name__)


def vllm_is_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def _driver_worker(llm: Any) -> Any:
    return llm.llm_engine.model_executor.driver_worker


def colocate_sync(
    llm: Any, named_params: Iterable[tuple[str, torch.Tensor]], *, cpu: bool | None = None
) -> int:
    """Load ``named_params`` (checkpoint names) into the in-process engine; returns tensors sent."""
    cpu = vllm_is_cpu() if cpu is None else cpu
    worker = _driver_worker(llm)
    if cpu:
        weights = [(name, t.detach().to("cpu")) for name, t in named_params]
        worker.worker.model_runner.reload_weights(
            weights_iterator=weights, is_checkpoint_format=True
        )
        sent = len(weights)
    else:
        model = worker.model_runner.model
        sent = 0
        for name, t in named_params:
            model.load_weights([(name, t)])
            sent += 1
    reset = getattr(llm.llm_engine, "reset_encoder_cache", None)
    if reset is not None:
        reset()
    llm.reset_prefix_cache()
    return sent


def patch_sync_weights(generation: Any, *, cpu: bool | None = None) -> None:
    """Route a TRL ``VLLMGeneration``'s colocate sync through :func:`colocate_sync`.

    Call after ``GRPOTrainer.__init__`` when ``use_vllm`` and ``vllm_mode == "colocate"``:
    ``patch_sync_weights(trainer.vllm_generation)``. Sleep-mode wake-up and PEFT/FSDP/ZeRO
    parameter gathering stay TRL's (``_iter_named_params``).
    """
    original = generation.sync_weights

    def sync_weights(self: Any) -> None:
        if self.mode != "colocate":
            return original()
        if getattr(self, "enable_sleep_mode", False):
            self.llm.wake_up(tags=["weights"])
            self._llm_weights_sleeping = False
        n = colocate_sync(self.llm, self._iter_named_params(), cpu=cpu)
        log.debug("synced %d tensors into vLLM", n)
        return None

    generation.sync_weights = types.MethodType(sync_weights, generation)
