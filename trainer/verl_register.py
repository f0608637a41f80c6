"""Importing this module registers our policy losses into verl (``prl_grpo``, ``prl_dapo``, …).

verl imports it on ``import verl`` in every process — driver and Ray workers — through this
package's ``verl.plugins`` entry point, or through ``VERL_USE_EXTERNAL_MODULES=
trainer.verl_register``. See :mod:`trainer.verl_plugin` for the losses and their normalisation.
"""

from __future__ import annotations

from trainer.verl_plugin import register_into_verl

REGISTERED: list[str] = register_into_verl()
"""The names registered by this import."""
