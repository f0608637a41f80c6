"""``prl demo``: the whole product end to end on embedded defaults.

1. tiny offline models: a CLIP encoder (embedding service) and a Qwen2-VL policy built from
   config (or ``--model PATH``, a real checkpoint, on a GPU);
2. DiG data in the tiny setting of :mod:`trainer.toy` (56×56 raster pairs on a 2×2 lattice, 1–2 large
   objects, one difference): a training set and a held-out eval set (different seeds);
3. the local stack on loopback: embedding, reward, leaderboard, trainer service (SQLite);
4. two jobs submitted to the trainer service (``accelerate launch``), per-step metrics into
   the store: an SFT warm start on gold completions, then GRPO + DEVA from it
   (``init_from``) — diversity loss, entropy regulariser, harmonic format + F1 + mIoU +
   alignment reward over HTTP (the reward service asks the embedding service);
5. base, SFT and GRPO + DEVA checkpoints benchmarked on the held-out suite (resumable runs,
   bootstrap CIs), plus an oracle row (jittered ground truth, named as such);
6. the leaderboard printed, with the URL of its page (table + charts + training curves).

:meth:`DemoConfig.quick` (``prl demo --quick``) runs the same phases at toy sizes in about
two minutes (tests); nothing learns there.

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
from services.common.catalog import SERVICE_NAMES
from services.stack import LocalStack, default_specs
from trainer.toy import DEVA_DIG_REWARD, FULL_DEVA, QUICK, ToySetting

log = logging.getLogger(__name__)

SERVICES = SERVICE_NAMES
SUITE_METRIC = "dig/f1"
ORACLE = "oracle-gt-jitter"
MODELS = {"base": "qwen2vl-tiny-base", "sft": "qwen2vl-tiny-sft", "grpo": "qwen2vl-tiny-grpo-deva"}


@dataclass(frozen=True)
class DemoConfig:
    workdir: Path
    model: Path | None = None  # a real Qwen2-VL checkpoint; default: a tiny one from config
    setting: ToySetting = field(default_factory=ToySetting)
    launch: str = "cpu"
    n_boot: int = 1000
    keep_serving: bool = False
    oracle: bool = True

    @classmethod
    def quick(cls, workdir: Path, **kw: Any) -> DemoConfig:
        """The fast path (``prl demo --quick``): same phases at toy sizes; nothing learns."""
        kw.setdefault("n_boot", 100)
        return cls(workdir=workdir, setting=QUICK, **kw)


@dataclass
class DemoResult:
    urls: dict[str, str]
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    leaderboard: dict[str, Any] = field(default_factory=dict)
    learning: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    stack: LocalStack | None = None  # still running when ``keep_serving``; the caller stops it

    @property
    def job(self) -> dict[str, Any]:
        """The GRPO + DEVA job."""
        return self.jobs["grpo"]

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "stack"}


def build_models(cfg: DemoConfig) -> Path:
    """The tiny CLIP for the embedding service (workdir/models/clip)."""
    from services.embedding.tiny import build_tiny_encoder

    clip = cfg.workdir / "models" / "clip"
    if not (clip / "config.json").exists():
        build_tiny_encoder("clip", clip, seed=cfg.setting.seed)
    return clip


def build_data(cfg: DemoConfig) -> tuple[Path, Path]:
    """The toy setting's training and held-out DiG sets under ``workdir/data``."""
    train, evaluation = cfg.workdir / "data" / "dig-train", cfg.workdir / "data" / "dig-eval"
    cfg.setting.generate(train, evaluation)
    return train, evaluation


def sft_config(cfg: DemoConfig, train_root: Path) -> dict[str, Any]:
    """The SFT warm-start job (same schema as ``prl train --config``)."""
    config = cfg.setting.sft_config(train_root)
    if cfg.model:
        config["model"] = {"path": str(cfg.model)}
    return config


def training_config(
    cfg: DemoConfig, train_root: Path, reward_url: str, init_from: Path | None
) -> dict[str, Any]:
    """The GRPO + DEVA job, started from the SFT checkpoint ``init_from``.

    DEVA on: diversity loss, global entropy regulariser, and the harmonic reward with the
    alignment component — each sample goes to the reward service with image B's path
    (relative to the embedding service's data root, the demo workdir), the query and a patch
    mask from the policy's own text→image attention (eager attention), and the reward service
    calls the embedding service.
    """
    config = cfg.setting.grpo_config(
        train_root,
        init_from=init_from,
        reward_url=reward_url,
        deva=FULL_DEVA,
        api_key=DEV_API_KEY,
        path_root=cfg.workdir,
    )
    if cfg.model:
        config["model"] = {"path": str(cfg.model), "attn_implementation": "eager"}
    return config


def train(
    cfg: DemoConfig,
    trainer_url: str,
    config: dict[str, Any],
    *,
    name: str = "demo-grpo-deva",
    poll_s: float = 1.0,
) -> dict[str, Any]:
    """Submit the job to the trainer service through the SDK and follow it to the end."""
    from clients import TrainerClient

    with TrainerClient(trainer_url, api_key=DEV_API_KEY, timeout=60) as tc:
        job = tc.submit(config, name=name, launch=cfg.launch)  # type: ignore[arg-type]
        log.info("training job %s submitted (%s)", job.id, name)
        job = tc.wait(job.id, timeout_s=24 * 3600, poll_s=poll_s)
        if job.status != "completed":
            tail = tc.logs(job.id, lines=40)
            raise RuntimeError(f"training job {job.status}: {job.message}\n{tail}")
    return job.model_dump(mode="json")


def eval_options(cfg: DemoConfig, *, batch_size: int) -> Any:
    """Every demo run is scored with the DEVA DiG reward (image B's path goes with each sample,
    so the alignment component is computed by the embedding service) — one config, comparable
    rows; the suite's DiG F1/mIoU metrics come from the same scoring."""
    from schemas.reward import RewardSpec
    from services.benchmark.runner import RunOptions

    return RunOptions(
        batch_size=batch_size, seed=cfg.setting.seed, n_boot=cfg.n_boot, progress=False,
        reward=RewardSpec.model_validate(DEVA_DIG_REWARD), send_images=True,
    )  # fmt: skip


def component_mean(leaderboard_url: str, run_id: int, name: str) -> float | None:
    """Mean of one reward component over a stored run's samples (None when never computed)."""
    detail = httpx.get(f"{leaderboard_url}/v1/runs/{run_id}", params={"limit": 1000}, timeout=30)
    detail.raise_for_status()
    values = [r["components"].get(name) for r in detail.json()["samples"]["items"]]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def eval_task(cfg: DemoConfig, eval_root: Path) -> Any:
    """The held-out DiG suite with the toy setting's task options (short prompt, pixels)."""
    from tasks.registry import get_task

    return get_task("dig", root=str(eval_root), **cfg.setting.task_options)


def evaluate(
    cfg: DemoConfig, adapter: Any, eval_root: Path, db_url: str, reward_url: str, *, batch_size: int
) -> dict:
    """Run ``adapter`` on the DiG eval suite, scored by the reward service, stored in SQL."""
    from services.benchmark.runner import run_benchmark
    from services.benchmark.scoring import HttpScorer
    from services.benchmark.store import SqlRunStore

    result = run_benchmark(
        eval_task(cfg, eval_root),
        adapter,
        store=SqlRunStore(db_url),
        scorer=HttpScorer(reward_url, api_key=DEV_API_KEY),
        options=eval_options(cfg, batch_size=batch_size),
    )
    return {
        "run_id": result.run_id,
        "metrics": {m.name: m.value for m in result.metrics},
        "ci": {m.name: [m.ci_low, m.ci_high] for m in result.metrics if m.ci_low is not None},
    }


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
        max_new_tokens=cfg.setting.eval_max_new_tokens,
        device="cuda" if cuda else "cpu",
        dtype="bfloat16" if cuda else "float32",
    )
    return evaluate(cfg, adapter, eval_root, db_url, reward_url, batch_size=16)


def reward_trend(metrics_path: Path, key: str = "reward") -> dict[str, Any]:
    """First and last fifth of a run's per-step ``key`` (mean, standard error) and whether the
    last fifth lies above the first by more than twice their combined standard error; with the
    zero-variance group fraction of the last fifth."""
    import statistics

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    series = [r[key] for r in rows if r.get(key) is not None]
    zero = [r["frac_reward_zero_std"] for r in rows if r.get("frac_reward_zero_std") is not None]
    n = max(1, len(series) // 5)
    if len(series) < 2 * n or n < 2:
        return {"steps": len(series)}

    def stats(xs: list[float]) -> tuple[float, float]:
        return statistics.fmean(xs), statistics.stdev(xs) / len(xs) ** 0.5

    (m1, e1), (m2, e2) = stats(series[:n]), stats(series[-n:])
    return {
        "steps": len(series),
        "first_fifth": [m1, e1],
        "last_fifth": [m2, e2],
        "rises": m2 - m1 > 2 * (e1**2 + e2**2) ** 0.5,
        "falls": m1 - m2 > 2 * (e1**2 + e2**2) ** 0.5,
        "frac_reward_zero_std_last_fifth": statistics.fmean(zero[-n:]) if zero else None,
    }


def verdict(runs: dict[str, dict[str, Any]], metric: str = SUITE_METRIC) -> dict[str, Any]:
    """Whether the GRPO + DEVA row's CI on ``metric`` lies above the SFT row's (the bar the demo is held to:
    non-overlapping 95 % bootstrap intervals), with both rows' value and interval."""
    rows = {k: runs.get(MODELS[k]) for k in ("sft", "grpo")}
    if any(r is None or metric not in r.get("ci", {}) for r in rows.values()):
        return {"metric": metric, "grpo_above_sft": None}
    sft, grpo = rows["sft"], rows["grpo"]
    return {
        "metric": metric,
        "sft": [sft["metrics"][metric], *sft["ci"][metric]],
        "grpo": [grpo["metrics"][metric], *grpo["ci"][metric]],
        "grpo_above_sft": grpo["ci"][metric][0] > sft["ci"][metric][1],
    }


def oracle_predictions(
    cfg: DemoConfig,
    eval_root: Path,
    out: Path,
    *,
    jitter: float = 3.0,
    drop: float = 0.2,
    seed: int = 0,
) -> Path:
    """The oracle row: ground-truth boxes moved by up to ±``jitter`` pixels, each dropped with
    probability ``drop`` — it reads the labels, so it is named as an oracle on the board; it
    shows what the metrics report for a near-perfect model."""
    import random

    rng = random.Random(seed)
    with open(out, "w") as f:
        for sample in eval_task(cfg, eval_root).samples():
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
    """Benchmark a predictions JSONL file (the oracle row)."""
    from services.benchmark.adapters.predictions import PredictionsFile

    adapter = PredictionsFile(str(path), name=name)
    return evaluate(cfg, adapter, eval_root, db_url, reward_url, batch_size=16)


def leaderboard(leaderboard_url: str, metric: str = SUITE_METRIC) -> dict[str, Any]:
    from clients.leaderboard import LeaderboardClient

    with LeaderboardClient(leaderboard_url) as client:
        return client.leaderboard("dig", metric).model_dump(mode="json")


def _trend_word(trend: dict[str, Any]) -> str:
    if trend["rises"]:
        return "rises"
    return "falls" if trend.get("falls") else "flat within noise"


def format_learning(learning: dict[str, Any]) -> str:
    """Two lines: the GRPO + DEVA training reward trend and the held-out SFT → GRPO verdict."""
    trend, held = learning.get("grpo_reward", {}), learning.get("heldout", {})
    lines = []
    if "first_fifth" in trend:
        (m1, e1), (m2, e2) = trend["first_fifth"], trend["last_fifth"]
        lines.append(
            f"GRPO + DEVA training reward: first fifth {m1:.3f} ± {e1:.3f}, last fifth "
            f"{m2:.3f} ± {e2:.3f} ({_trend_word(trend)}); "
            f"zero-std groups at the end: {trend['frac_reward_zero_std_last_fifth']:.2f}"
        )
    if held.get("grpo_above_sft") is not None:
        (s, sl, sh), (g, gl, gh) = held["sft"], held["grpo"]
        lines.append(
            f"held-out {held['metric']}: SFT {s:.3f} [{sl:.3f}, {sh:.3f}] → GRPO + DEVA "
            f"{g:.3f} [{gl:.3f}, {gh:.3f}]: "
            + ("CI above SFT's" if held["grpo_above_sft"] else "CIs overlap (not above SFT)")
        )
    return "\n".join(lines)


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
    """Every phase in order (see the module docstring); ``seconds`` and per-phase
    ``timings`` are recorded, the summary goes to ``workdir/demo-result.json``."""
    from tqdm import tqdm

    t0 = time.monotonic()
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    phases = ["models", "data", "stack", "sft", "grpo", "bench", "leaderboard"]
    bar = tqdm(total=len(phases), desc="demo", unit="phase")
    timings: dict[str, float] = {}
    clock = [time.monotonic()]

    def done(name: str) -> None:
        now = time.monotonic()
        timings[name] = round(now - clock[0], 1)
        clock[0] = now
        bar.update()

    bar.set_postfix_str("models")
    build_models(cfg)
    done("models")
    train_root, eval_root = build_data(cfg)
    done("data")
    stack = LocalStack(default_specs(cfg.workdir, SERVICES), log_dir=cfg.workdir / "logs")
    db_url = f"sqlite:///{(cfg.workdir / 'prl.sqlite').resolve()}"
    result: DemoResult | None = None
    try:
        stack.start()
        stack.wait_ready(300)
        urls = stack.urls()
        result = DemoResult(urls=urls, timings=timings)
        done("stack")
        bar.set_postfix_str("sft")
        sft = train(cfg, urls["trainer"], sft_config(cfg, train_root), name="demo-sft")
        result.jobs["sft"] = sft
        sft_dir = cfg.workdir / "runs" / f"job-{sft['id']}"
        done("sft")
        bar.set_postfix_str("grpo + deva")
        grpo_cfg = training_config(cfg, train_root, urls["reward"], sft_dir / "final")
        result.jobs["grpo"] = train(cfg, urls["trainer"], grpo_cfg, name="demo-grpo-deva")
        result.jobs["grpo"]["config"] = grpo_cfg
        grpo_dir = cfg.workdir / "runs" / f"job-{result.jobs['grpo']['id']}"
        done("grpo")
        bar.set_postfix_str("bench")
        checkpoints = {
            MODELS["base"]: cfg.model or sft_dir / "base-model",
            MODELS["sft"]: sft_dir / "final",
            MODELS["grpo"]: grpo_dir / "final",
        }
        for name, path in checkpoints.items():
            result.runs[name] = benchmark(cfg, Path(path), name, eval_root, db_url, urls["reward"])
        if cfg.oracle:
            oracle = oracle_predictions(
                cfg, eval_root, cfg.workdir / "oracle-predictions.jsonl", seed=cfg.setting.seed
            )
            result.runs[ORACLE] = benchmark_predictions(
                cfg, oracle, ORACLE, eval_root, db_url, urls["reward"]
            )
        for run in result.runs.values():
            run["alignment_mean"] = component_mean(urls["leaderboard"], run["run_id"], "alignment")
        done("bench")
        result.learning = {
            "grpo_reward": reward_trend(grpo_dir / "metrics.jsonl"),
            "heldout": verdict(result.runs),
        }
        result.leaderboard = leaderboard(urls["leaderboard"])
        result.seconds = time.monotonic() - t0
        done("leaderboard")
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
