"""DiG: differential grounding ("spot the difference") data and task (DiG, CVPR 2026).

``generate(out_dir, n, renderer="raster"|"blender", seed=, split=, size=)`` writes image
pairs, a JSONL manifest and the dataset version; ``get_task("dig", root=out_dir)`` reads them.
"""

from tasks.dig.generate import DATASET_INFO, MANIFEST, STAGES, generate

__all__ = ["DATASET_INFO", "MANIFEST", "STAGES", "generate"]
