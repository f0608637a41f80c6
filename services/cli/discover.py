"""Discovery: ``prl tasks``, ``prl rewards``, ``prl metrics``, ``prl adapters``.

Each lists one registry with what a user needs to write a command or a config: a task's
options (required ones marked), a reward preset's components and what it reproduces, a
component's range and parameters, a metric's and an adapter's description. ``--json``
prints the same as JSON.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import typer

from services.cli.base import app, rewards_app


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or inspect.getdoc(inspect.getmodule(obj)) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def _params(schema: dict[str, Any]) -> str:
    props = schema.get("properties") or {}
    parts = []
    for name, p in props.items():
        default = p.get("default", "required" if name in schema.get("required", []) else None)
        parts.append(f"{name}={default!r}" if default is not None else name)
    return ", ".join(parts) or "-"


def _emit(rows: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(rows, indent=2, default=str) if as_json else text)


AS_JSON = typer.Option(False, "--json", help="print as JSON")


@app.command("tasks")
def list_tasks(as_json: bool = AS_JSON) -> None:
    """Registered tasks with their options (``prl bench run --task NAME --task-opt k=v``)."""
    from tasks.options import describe_options
    from tasks.registry import tasks

    rows = []
    for name, factory in tasks.items():
        rows.append(
            {
                "name": name,
                "description": _first_line(factory),
                "options": dict(describe_options(factory)),
            }
        )
    lines = []
    for r in rows:
        lines.append(f"{r['name']}: {r['description']}")
        lines.append("    " + ", ".join(f"{k}={v}" for k, v in r["options"].items()))
    _emit(rows, as_json, "\n".join(lines))


@rewards_app.callback()
def list_rewards(ctx: typer.Context, as_json: bool = AS_JSON) -> None:
    """Reward presets (what each reproduces), components (range, params), aggregators and
    advantage estimators: everything a reward spec may name."""
    if ctx.invoked_subcommand is not None:
        return
    from services.reward.scoring.catalog import catalog

    cat = catalog().model_dump(mode="json")
    if as_json:
        _emit(cat, True, "")
        return
    lines = ["presets:"]
    for p in cat["presets"]:
        comps = " + ".join(c["name"] for c in p["spec"]["components"])
        lines.append(f"  {p['name']:<22} {p['spec']['aggregate']['method']}({comps})")
        lines.append(f"      reproduces: {p['reproduces']}")
        if p["deviations"]:
            lines.append(f"      deviates:   {p['deviations']}")
    lines.append("components:")
    for c in cat["components"]:
        lo, hi = c["range"]
        lines.append(f"  {c['name']:<22} [{lo:g}, {hi:g}]  needs {c['needs']}  ({c['kind']})")
        lines.append(f"      {c['description'].splitlines()[0] if c['description'] else ''}")
        lines.append(f"      params: {_params(c['params'])}")
    for title in ("aggregators", "advantages"):
        lines.append(f"{title}:")
        for a in cat[title]:
            desc = a["description"].splitlines()[0] if a["description"] else ""
            lines.append(f"  {a['name']:<22} {desc}  params: {_params(a['params'])}")
    _emit(cat, False, "\n".join(lines))


@app.command("metrics")
def list_metrics(as_json: bool = AS_JSON) -> None:
    """Benchmark metrics (``prl bench run --metric NAME``) and the tasks reporting each."""
    from services.benchmark.metrics.registry import metrics

    rows = [{"name": n, "description": _first_line(m)} for n, m in metrics.items()]
    _emit(rows, as_json, "\n".join(f"{r['name']:<24} {r['description']}" for r in rows))


@app.command("adapters")
def list_adapters(as_json: bool = AS_JSON) -> None:
    """Model adapters (``prl bench run --adapter NAME --adapter-opt k=v``) and their options."""
    from services.benchmark.adapters import adapter_names, adapters
    from tasks.options import describe_options

    rows = []
    for name in adapter_names():
        factory = adapters.get(name)
        rows.append(
            {
                "name": name,
                "description": _first_line(factory),
                "options": dict(describe_options(factory)),
            }
        )
    lines = []
    for r in rows:
        lines.append(f"{r['name']}: {r['description']}")
        lines.append("    " + ", ".join(f"{k}={v}" for k, v in r["options"].items()))
    _emit(rows, as_json, "\n".join(lines))
