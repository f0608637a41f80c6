"""``prl rewards fit-aggregator``: fit the ``learned`` aggregator from runs in the SQL store.

    prl rewards fit-aggregator --run 3 --run 4 --inputs format,miou --target f1 \\
        --out models/agg-dig.json
    prl rewards fit-aggregator --suite dig --target f1 --loss bradley-terry --out bt.json --json

Inputs are the runs' per-sample component values scaled by their ranges; the target is a
per-sample component (``f1`` for DiG, whose suite metric is the mean per-sample F1). See
:mod:`services.benchmark.learned_aggregator` and ``docs/rewards.md`` ("A learned aggregator").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from services.cli._store import db_option, open_store
from services.cli.base import rewards_app
from services.cli.errors import CliError

LOSSES = {"mse": "mse", "bradley-terry": "bradley_terry", "bt": "bradley_terry"}


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise CliError("--inputs: give component names separated by commas, e.g. format,miou")
    return names


@rewards_app.command("fit-aggregator")
def fit_aggregator(
    run: list[str] = typer.Option(
        None, "--run", help="run id or key to fit on (repeat the option for several runs)"
    ),
    suite: str | None = typer.Option(None, help="also use every completed run of this suite"),
    target: str = typer.Option(
        ..., help="per-sample component to predict (the suite metric, e.g. f1)"
    ),
    inputs: str | None = typer.Option(
        None,
        help="components the model reads, comma-separated (default: the first run's "
        "reward components without the target)",
    ),
    loss: str = typer.Option(
        "mse", help="mse (regress the target) or bradley-terry (pairs of runs on one sample)"
    ),
    out: Path = typer.Option(..., help="model file to write (.json)"),
    force: bool = typer.Option(False, "--force", help="replace an existing model file"),
    groups: int = typer.Option(2, help="network groups G (soft maximum)"),
    units: int = typer.Option(8, help="linear units per group J (soft minimum)"),
    restarts: int = typer.Option(4, help="random starts of the optimiser"),
    seed: int = typer.Option(0, help="seed of the starts and the holdout split"),
    holdout: float = typer.Option(0.2, help="fraction of rows held out to report a loss"),
    l2: float | None = typer.Option(
        None, help="weight penalty λ (default 1e-4 for mse, 1e-2 for bradley-terry)"
    ),
    db: str | None = db_option(),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Fit a monotone learned aggregator on stored runs and write its model file."""
    from services.benchmark.learned_aggregator import fit_from_store, learned_spec, write_model
    from services.reward.fit import FitConfig

    if loss not in LOSSES:
        raise CliError(f"--loss {loss!r}: use mse or bradley-terry")
    if out.suffix != ".json":
        raise CliError(f"--out {out}: the model file must end in .json")
    if out.exists() and not force:
        raise CliError(f"--out {out} exists; pass --force to replace it or choose a new name")
    if not run and suite is None:
        raise CliError("no runs given: name them with --run ID|KEY (repeatable) or --suite NAME")
    cfg = FitConfig(
        groups=groups, units=units, restarts=restarts, seed=seed, holdout=holdout, l2=l2
    )
    result, facts = fit_from_store(
        open_store(db),
        list(run or []),
        suite=suite,
        target=target,
        inputs=_names(inputs),
        loss=LOSSES[loss],
        cfg=cfg,
    )
    path = write_model(result, out, overwrite=force)
    summary: dict[str, Any] = {
        "model": str(path),
        "target": target,
        **result.summary(),
        **facts,
        "spec": learned_spec(result.model.inputs, path),
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    typer.echo(format_summary(summary))


def format_summary(s: dict[str, Any]) -> str:
    def num(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}"

    runs = ", ".join(f"{r['id']} ({r['model']} on {r['suite']})" for r in s["runs"])
    data = f"{s['rows']} rows" if "rows" in s else f"{s['pairs']} pairs"
    return "\n".join(
        [
            f"wrote {s['model']}",
            f"  fitted {s['loss']} on {data} from runs {runs}",
            f"  inputs {', '.join(s['inputs'])} → target {s['target']}",
            f"  train loss {num(s['train_loss'])} (harmonic {num(s['harmonic_train_loss'])}); "
            f"holdout {num(s['holdout_loss'])} (harmonic {num(s['harmonic_holdout_loss'])})",
            *(
                [
                    f"  pairs ordered right: holdout {num(s.get('holdout_pair_accuracy'))} "
                    f"(harmonic {num(s.get('harmonic_holdout_pair_accuracy'))})"
                ]
                if "pairs" in s
                else []
            ),
            f"  use it: {json.dumps(s['spec'])}",
        ]
    )
