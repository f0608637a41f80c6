"""DEVA and DiG ablations on the tiny CPU setting (:mod:`trainer.toy`); prints JSON.

Rows, all GRPO runs from the same SFT warm start, same data and seeds:

* DEVA component accumulation (DEVA, CVPR 2026): ``grpo`` → ``+div`` (L_div) →
  ``+div+reg`` (+ L_reg) → ``+div+reg+align`` (+ alignment reward, arithmetic mean of scaled
  components) → ``+div+reg+align+harmonic`` (DEVA's harmonic aggregation);
* DiG's reward ablation (DiG, CVPR 2026): ``format`` only, ``format+miou``, ``format+f1``,
  ``full`` (format + F1 + mIoU; the same run as DEVA's ``grpo`` row, reported once per table);
* the other baselines of DEVA's tables, each GRPO's row with one change: BNPO, Dr GRPO, GSPO,
  GMPO, CPPO (half the completions kept), PAPO and GRPO-CARE (``BASELINES``).

Per row: the mean within-group reward std over training (DEVA reports 0.234 → 0.262 on LISA
with L_div), the fraction of zero-variance groups, the reward of the first and last fifth of
the steps, held-out DiG F1 and mIoU with 95 % bootstrap CIs, and wall time. The SFT start is
reported as its own row. Rewards go over HTTP to a local reward service, which asks a local
embedding service (tiny CLIP) for the alignment component.

    python benchmarks/deva_ablation.py --quick          # one seed, short GRPO runs
    python benchmarks/deva_ablation.py --seeds 0 1 2    # the table in docs/training.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import fmean
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.toy import DEVA_ROWS, DIG_REWARDS, Deva, ToySetting  # noqa: E402

SFT_ROW = "sft (start)"


#: The other baselines of DEVA's tables: plain GRPO's row with one run-config change each.
BASELINES: dict[str, dict[str, Any]] = {
    "base:bnpo": {"loss_type": "bnpo"},
    "base:dr_grpo": {"loss_type": "dr_grpo"},
    "base:gspo": {"loss_type": "gspo"},
    "base:gmpo": {"loss_type": "gmpo"},
    "base:cppo": {"loss_type": "cppo", "cppo": {"keep_ratio": 0.5}},
    "base:papo": {"papo": {"enabled": True}},
    "base:grpo-care": {"care": {"enabled": True}},
}

Row = tuple[Deva, dict[str, Any] | None, str, dict[str, Any]]


def rows() -> dict[str, Row]:
    """name → (DEVA switches, reward override, table, run-config overrides)."""
    out: dict[str, Row] = {name: (deva, None, "deva", {}) for name, deva in DEVA_ROWS.items()}
    for name, spec in DIG_REWARDS.items():
        if name != "full":
            out[f"dig:{name}"] = (Deva(), spec, "dig", {})
    for name, extra in BASELINES.items():
        out[name] = (Deva(), None, "baselines", extra)
    return out


def train(config: dict[str, Any], run_dir: Path) -> float:
    """``prl train`` in a subprocess (a fresh accelerate state per run); returns seconds."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    path.write_text(json.dumps({**config, "run_dir": str(run_dir)}))
    t0 = time.monotonic()
    with open(run_dir / "train.log", "w") as log:
        subprocess.run(
            [sys.executable, "-m", "services.cli", "train", "--config", str(path)],
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    return time.monotonic() - t0


def training_stats(run_dir: Path) -> dict[str, Any]:
    """Within-group std, zero-variance fraction and reward trend from ``metrics.jsonl``."""
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").open() if line.strip()]
    rewards = [r["reward"] for r in recs if "reward" in r]
    fifth = max(1, len(rewards) // 5)

    def mean_of(key: str) -> float | None:
        values = [r[key] for r in recs if key in r]
        return fmean(values) if values else None

    return {
        "steps": len(rewards),
        "group_std": mean_of("reward_service/group_std"),
        "zero_std_frac": mean_of("frac_reward_zero_std"),
        "zero_std_frac_last": recs[-1].get("frac_reward_zero_std") if recs else None,
        "reward_first_fifth": fmean(rewards[:fifth]) if rewards else None,
        "reward_last_fifth": fmean(rewards[-fifth:]) if rewards else None,
    }


def evaluate(setting: ToySetting, model_dir: Path, eval_root: Path, reward_url: str) -> dict:
    """Held-out DiG F1 / mIoU (95 % bootstrap CIs) of ``model_dir``, greedy decoding."""
    from services.benchmark.adapters.transformers_vlm import TransformersVLM
    from services.benchmark.runner import RunOptions, run_benchmark
    from services.benchmark.scoring import HttpScorer
    from services.benchmark.store import MemoryRunStore
    from services.common.auth import DEV_API_KEY
    from tasks.registry import get_task

    adapter = TransformersVLM(str(model_dir), max_new_tokens=setting.eval_max_new_tokens)
    result = run_benchmark(
        get_task("dig", root=str(eval_root), **setting.task_options),
        adapter,
        store=MemoryRunStore(),
        scorer=HttpScorer(reward_url, api_key=DEV_API_KEY),
        options=RunOptions(batch_size=16, n_boot=1000, seed=0, progress=False),
    )
    return {
        m.name: {"value": m.value, "ci": [m.ci_low, m.ci_high]}
        for m in result.metrics
        if m.name in ("dig/f1", "dig/miou", "error_rate")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one seed, short GRPO runs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--grpo-steps", type=int, default=None)
    ap.add_argument("--only", nargs="*", default=None, help="row names to run (default all)")
    ap.add_argument(
        "--sft-from",
        type=Path,
        default=None,
        help="reuse this SFT checkpoint of the toy setting (e.g. a demo's runs/job-1/final) "
        "for the first seed instead of training one",
    )
    ap.add_argument("--workdir", type=Path, default=Path("bench-out/deva-ablation"))
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()

    from services.embedding.tiny import build_tiny_encoder
    from services.stack import LocalStack, default_specs

    seeds = [args.seeds[0]] if args.quick else args.seeds
    base = ToySetting()
    steps = args.grpo_steps or (30 if args.quick else base.grpo_steps)
    work = args.workdir.resolve()
    clip = work / "models" / "clip"
    if not (clip / "config.json").exists():
        build_tiny_encoder("clip", clip, seed=0)
    train_root, eval_root = work / "data" / "dig-train", work / "data" / "dig-eval"
    base.generate(train_root, eval_root)
    selected = {k: v for k, v in rows().items() if args.only is None or k in args.only}
    results: dict[str, list[dict[str, Any]]] = {SFT_ROW: []}
    stack = LocalStack(default_specs(work, ("embedding", "reward")), log_dir=work / "logs")
    t_all = time.monotonic()
    try:
        stack.start()
        stack.wait_ready(300)
        reward_url = stack.urls()["reward"]
        for seed in seeds:
            setting = dataclasses.replace(base, seed=seed, grpo_steps=steps)
            sft_dir = work / f"seed{seed}" / "sft"
            sft_final = sft_dir / "final"
            sft_s = 0.0
            if args.sft_from is not None and seed == seeds[0]:
                sft_final = args.sft_from.resolve()
            elif not (sft_final / "config.json").exists():
                sft_s = train(setting.sft_config(train_root), sft_dir)
            scores = evaluate(setting, sft_final, eval_root, reward_url)
            results[SFT_ROW].append({"seed": seed, "wall_s": sft_s, **scores})
            for name, (deva, reward, table, extra) in selected.items():
                run_dir = work / f"seed{seed}" / name.replace(":", "-").replace("+", "p")
                config = setting.grpo_config(
                    train_root,
                    init_from=sft_final,
                    reward_url=reward_url,
                    deva=deva,
                    reward=reward,
                    api_key="prl-dev-key",
                    path_root=work,
                )
                wall = train({**config, **extra}, run_dir)
                row = {"seed": seed, "table": table, "wall_s": wall, **training_stats(run_dir)}
                row.update(evaluate(setting, run_dir / "final", eval_root, reward_url))
                results.setdefault(name, []).append(row)
                print(f"[{name} seed {seed}] {json.dumps(row)}", file=sys.stderr, flush=True)
    finally:
        stack.stop()
    report = {
        "benchmark": "deva_ablation",
        "quick": args.quick,
        "seeds": seeds,
        "setting": dataclasses.asdict(dataclasses.replace(base, grpo_steps=steps)),
        "rows": results,
        "summary": {name: summarise(runs) for name, runs in results.items()},
        "wall_s": time.monotonic() - t_all,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds; the CIs of a single seed are kept as they are."""
    out: dict[str, Any] = {"n_seeds": len(runs)}
    for key in ("group_std", "zero_std_frac", "reward_first_fifth", "reward_last_fifth", "wall_s"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = fmean(values)
    for metric in ("dig/f1", "dig/miou"):
        values = [r[metric]["value"] for r in runs if metric in r]
        if values:
            out[metric] = fmean(values)
            if len(runs) == 1:
                out[f"{metric} ci"] = runs[0][metric]["ci"]
    return out


if __name__ == "__main__":
    main()
