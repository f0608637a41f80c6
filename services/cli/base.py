"""The ``prl`` command tree. Sub-modules add their commands to these Typer groups.

Command modules import nothing heavy at import time (torch, transformers, sqlalchemy are
imported inside the command) so ``prl serve reward`` stays light.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    help="perception-rl: rewards, evaluation and GRPO training for VLM perception",
)
serve_app = typer.Typer(no_args_is_help=True, help="Run one service (uvicorn).")
data_app = typer.Typer(no_args_is_help=True, help="Build datasets (DiG).")
models_app = typer.Typer(no_args_is_help=True, help="Build tiny offline models.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmark runs.")
export_app = typer.Typer(no_args_is_help=True, help="Export trained parts.")
rewards_app = typer.Typer(
    invoke_without_command=True,
    help="Reward presets, components and aggregators; fit a learned aggregator.",
)


@app.callback()
def _global_options(
    debug: bool = typer.Option(
        False, "--debug", envvar="PRL_DEBUG", help="print the full traceback of an error"
    ),
) -> None:
    """perception-rl: rewards, evaluation and GRPO training for VLM perception."""
    from services.cli.errors import set_debug

    set_debug(debug)


app.add_typer(serve_app, name="serve")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
app.add_typer(export_app, name="export")
app.add_typer(rewards_app, name="rewards")
