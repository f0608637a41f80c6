"""``prl demo``: the whole product end to end on embedded defaults.

1. tiny offline models: a CLIP encoder (embedding service) and a Qwen2-VL policy
   (or ``--model PATH``, a real checkpoint, on a GPU);
2. DiG data: a training set (single/dual/mixed) and an eval set, raster renderer;
3. the local stack on loopback: embedding, reward, leaderboard, trainer service (SQLite);
4. a GRPO job with DEVA's diversity loss and entropy regulariser submitted to the trainer
   service (``accelerate launch``), rewards over HTTP, per-step metrics into the store;
5. the base and the trained checkpoint benchmarked on the DiG eval suite (resumable runs);
6. the leaderboard printed, with the URL of its page (table + charts).

Each phase is a small function; :func:`run_demo` strings them together with a progress bar.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.common.auth import DEV_API_KEY
from services.stack import LocalStack, default_specs

log = logging.getLogger(__name__)

SERVICES = ("embedding", "reward", "leaderboard", "trainer")
SUITE_METRIC = "dig/f1"


@dataclass(frozen=True)
class DemoConfig:
    workdir: Path
    model: Path | None = None  # a real Qwen2-VL checkpoint; default: a tiny random one
    n_train: int = 24
    n_eval: int = 12
    image_size: tuple[int, int] = (96, 72)
    steps: int = 3
    num_generations: int = 4
    max_completion_length: int = 24
    max_new_tokens: int = 48
    seed: int = 0
    launch: str = "cpu"
    n_boot: int = 200
    keep_serving: bool = False


@dataclass
class DemoResult:
    urls: dict[str, str]
    job: dict[str, Any]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    leaderboard: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    stack: LocalStack | None = None  # still running when ``keep_serving``; the caller stops it

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "stack"}


def build_models(cfg: DemoConfig) -> Path:
    """The tiny CLIP for the embedding service (workdir/models/clip)."""
    from services.embedding.tiny import build_tiny_encoder

    clip = cfg.workdir / "models" / "clip"
    if not (clip / "config.json").exists():
        build_tiny_encoder("clip", clip, seed=cfg.seed)
    return clip


def build_data(cfg: DemoConfig) -> tuple[Path, Path]:
    from tasks.dig import generate

    train, evaluation = cfg.workdir / "data" / "dig-train", cfg.workdir / "data" / "dig-eval"
    for root, n, seed in ((train, cfg.n_train, cfg.seed), (evaluation, cfg.n_eval, cfg.seed + 1)):
        if not (root / "manifest.jsonl").exists():
            generate(
                root,
                n,
                renderer="raster",
                seed=seed,
                split="all",
                size=cfg.image_size,
                progress=False,
            )
    return train, evaluation


DEVA_DIG_REWARD = {
    "components": [{"name": "format"}, {"name": "f1"}, {"name": "miou"}, {"name": "alignment"}],
    "aggregate": {"method": "harmonic"},
}
"""DEVA on DiG: format, F1 and mIoU with the hypervolume alignment reward, harmonic mean."""


def training_config(cfg: DemoConfig, train_root: Path, reward_url: str) -> dict[str, Any]:
    """The run config submitted to the trainer service (same schema as ``prl train --config``).

    DEVA on: diversity loss, global entropy regulariser, and the alignment reward — each sample
    goes to the reward service with image B's path (relative to the embedding service's data
    root, the demo workdir), the query and a patch mask from the policy's own text→image
    attention (eager attention), and the reward service calls the embedding service.
    """
    model: dict[str, Any] = (
        {"path": str(cfg.model)} if cfg.model else {"tiny": "qwen2vl", "seed": cfg.seed}
    )
    model["attn_implementation"] = "eager"
    return {
        "model": model,
        "task": {"name": "dig", "root": str(train_root)},
        "reward": {"url": reward_url, "reward": DEVA_DIG_REWARD, "api_key": DEV_API_KEY},
        "alignment": {
            "send_inputs": True,
            "image": "path",
            "path_root": str(cfg.workdir),
            "mask_from_attention": True,
            "mask_threshold": 0.5,
        },
        "loss_type": "dapo",
        "max_steps": cfg.steps,
        "seed": cfg.seed,
        "deva": {
            "diversity": {"enabled": True, "lambda_div": 0.1, "gamma": 0.5},
            "entropy_reg": {"enabled": True, "lambda_reg": 0.1},
        },
        "checkpoint": {"every_steps": cfg.steps, "keep": 1},
        "grpo": {
            "per_device_train_batch_size": cfg.num_generations,
            "num_generations": cfg.num_generations,
            "max_completion_length": cfg.max_completion_length,
            "learning_rate": 1e-3,
            "beta": 0.0,
            "temperature": 1.0,
        },
    }


def train(
    cfg: DemoConfig, trainer_url: str, config: dict[str, Any], *, poll_s: float = 1.0
) -> dict[str, Any]:
    """Submit the job to the trainer service and follow it to the end."""
    headers = {"Authorization": f"Bearer {DEV_API_KEY}"}
    with httpx.Client(base_url=trainer_url, timeout=30) as c:
        r = c.post(
            "/v1/jobs",
            json={"name": "demo-deva-dig", "config": config, "launch": cfg.launch},
            headers=headers,
        )
        if r.status_code != 201:
            raise RuntimeError(f"job submission refused ({r.status_code}): {r.text}")
        job = r.json()
        while job["status"] in ("pending", "running"):
            time.sleep(poll_s)
            job = c.get(f"/v1/jobs/{job['id']}").json()
            log.info("training job %s: %s, step %s", job["id"], job["status"], job.get("step"))
        if job["status"] != "completed":
            tail = c.get(f"/v1/jobs/{job['id']}/logs", params={"lines": 40}).text
            raise RuntimeError(f"training job {job['status']}: {job.get('message')}\n{tail}")
    return job


def eval_options(cfg: DemoConfig, *, batch_size: int) -> Any:
    """Every demo run is scored with the DEVA DiG reward (image B's path goes with each sample,
    so the alignment component is computed by the embedding service) — one config, comparable
    rows; the suite's DiG F1/mIoU metrics come from the same scoring."""
    from schemas.reward import RewardSpec
    from services.benchmark.runner import RunOptions

    return RunOptions(
        batch_size=batch_size, seed=cfg.seed, n_boot=cfg.n_boot, progress=False,
        reward=RewardSpec.model_validate(DEVA_DIG_REWARD), send_images=True,
    )  # fmt: skip


def component_mean(leaderboard_url: str, run_id: int, name: str) -> float | None:
    """Mean of one reward component over a stored run's samples (None when never computed)."""
    detail = httpx.get(f"{leaderboard_url}/v1/runs/{run_id}", params={"limit": 1000}, timeout=30)
    detail.raise_for_status()
    values = [r["components"].get(name) for r in detail.json()["samples"]["items"]]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def evaluate(
    cfg: DemoConfig, adapter: Any, eval_root: Path, db_url: str, reward_url: str, *, batch_size: int
) -> dict:
    """Run ``adapter`` on the DiG eval suite, scored by the reward service, stored in SQL."""
    from services.benchmark.runner import run_benchmark
    from services.benchmark.scoring import HttpScorer
    from services.benchmark.store import SqlRunStore
    from tasks.registry import get_task

    result = run_benchmark(
        get_task("dig", root=str(eval_root)),
        adapter,
        store=SqlRunStore(db_url),
        scorer=HttpScorer(reward_url, api_key=DEV_API_KEY),
        options=eval_options(cfg, batch_size=batch_size),
    )
    return {"run_id": result.run_id, "metrics": {m.name: m.value for m in result.metrics}}


def benchmark(
    cfg: DemoConfig, model_dir: Path, name: str, eval_root: Path, db_url: str, reward_url: str
) -> dict:
    """Benchmark the checkpoint ``model_dir`` (CUDA + bf16 when a GPU is present)."""
    import torch

    from services.benchmark.adapters.transformers_vlm import TransformersVLM

    cuda = torch.cuda.is_available()
    adapter = TransformersVLM(
        str(model_dir),
        name=name,
        max_new_tokens=cfg.max_new_tokens,
        device="cuda" if cuda else "cpu",
        dtype="bfloat16" if cuda else "float32",
    )
    return evaluate(cfg, adapter, eval_root, db_url, reward_url, batch_size=4)


def reference_predictions(
    eval_root: Path, out: Path, *, jitter: float = 3.0, drop: float = 0.2, seed: int = 0
) -> Path:
    """A labelled reference row for the leaderboard: ground-truth boxes moved by up to ±``jitter``
    pixels, each dropped with probability ``drop`` — an upper reference that shows what the
    metrics report for a good model (the tiny random policy scores 0)."""
    import random

    from tasks.registry import get_task

    rng = random.Random(seed)
    with open(out, "w") as f:
        for sample in get_task("dig", root=str(eval_root)).samples():
            w, h = sample.frame.image_size or (1, 1)
            boxes = [b for b in sample.solution.boxes if rng.random() >= drop]
            moved = [
                [
                    round(min(max(c + rng.uniform(-jitter, jitter), 0), lim), 1)
                    for c, lim in zip(b, (w, h, w, h), strict=True)
                ]
                for b in boxes
            ]
            completion = (
                f"<think>compare the two images</think><answer>{json.dumps(moved)}</answer>"
            )
            f.write(json.dumps({"id": sample.id, "completion": completion}) + "\n")
    return out


def benchmark_predictions(
    cfg: DemoConfig, path: Path, name: str, eval_root: Path, db_url: str, reward_url: str
) -> dict:
    """Benchmark a predictions JSONL file (the reference row)."""
    from services.benchmark.adapters.predictions import PredictionsFile

    adapter = PredictionsFile(str(path), name=name)
    return evaluate(cfg, adapter, eval_root, db_url, reward_url, batch_size=16)


def leaderboard(leaderboard_url: str, metric: str = SUITE_METRIC) -> dict[str, Any]:
    from clients.leaderboard import LeaderboardClient

    with LeaderboardClient(leaderboard_url) as client:
        return client.leaderboard("dig", metric).model_dump(mode="json")


def format_leaderboard(board: dict[str, Any]) -> str:
    arrow = "↑" if board.get("higher_is_better", True) else "↓"
    lines = [
        f"leaderboard  suite {board['suite']}@{board['version']}  metric {board['metric']} {arrow}"
    ]
    for e in board["entries"]:
        ci = f"  [{e['ci_low']:.3f}, {e['ci_high']:.3f}]" if e.get("ci_low") is not None else ""
        lines.append(
            f"  {e['rank']:>2}. {e['model']:<28} {e['value']:.4f}{ci}  (run {e['run_id']})"
        )
    return "\n".join(lines)


def run_demo(cfg: DemoConfig) -> DemoResult:
    from tqdm import tqdm

    t0 = time.monotonic()
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    phases = [
        "models",
        "data",
        "stack",
        "train",
        "bench base",
        "bench trained",
        "bench reference",
        "leaderboard",
    ]
    bar = tqdm(total=len(phases), desc="demo", unit="phase")

    def step(name: str) -> None:
        bar.set_postfix_str(name)

    step("models")
    build_models(cfg)
    bar.update()
    step("data")
    train_root, eval_root = build_data(cfg)
    bar.update()
    step("stack")
    stack = LocalStack(default_specs(cfg.workdir, SERVICES), log_dir=cfg.workdir / "logs")
    db_url = f"sqlite:///{(cfg.workdir / 'prl.sqlite').resolve()}"
    result: DemoResult | None = None
    try:
        stack.start()
        stack.wait_ready(300)
        urls = stack.urls()
        bar.update()
        step("train")
        job = train(cfg, urls["trainer"], training_config(cfg, train_root, urls["reward"]))
        run_dir = cfg.workdir / "runs" / f"job-{job['id']}"
        result = DemoResult(urls=urls, job=job)
        bar.update()
        base = cfg.model or run_dir / "base-model"
        for label, path, name in (
            ("bench base", base, "qwen2vl-base"),
            ("bench trained", run_dir / "final", "qwen2vl-deva"),
        ):
            step(label)
            result.runs[name] = benchmark(cfg, Path(path), name, eval_root, db_url, urls["reward"])
            bar.update()
        step("bench reference")
        ref = reference_predictions(
            eval_root, cfg.workdir / "reference-predictions.jsonl", seed=cfg.seed
        )
        result.runs["reference-gt-jitter"] = benchmark_predictions(
            cfg, ref, "reference-gt-jitter", eval_root, db_url, urls["reward"]
        )
        bar.update()
        for run in result.runs.values():
            run["alignment_mean"] = component_mean(urls["leaderboard"], run["run_id"], "alignment")
        step("leaderboard")
        result.leaderboard = leaderboard(urls["leaderboard"])
        bar.update()
        result.seconds = time.monotonic() - t0
        (cfg.workdir / "demo-result.json").write_text(
            json.dumps(result.summary(), indent=2, default=str)
        )
        if cfg.keep_serving:
            result.stack = stack  # handed over: the caller stops it
        return result
    finally:
        bar.close()
        if result is None or result.stack is None:
            stack.stop()
