"""Export the wire contract: one JSON Schema per model, and the services' OpenAPI documents.

    python -m schemas.export DIR [--openapi reward ...]

writes ``DIR/<module>.<Model>.json`` for every pydantic model defined in ``schemas/`` and,
for each service named with ``--openapi``, ``DIR/openapi.<service>.json`` (this imports the
service, so it needs its extra installed).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import pkgutil
from pathlib import Path

from pydantic import BaseModel

import schemas

APPS = {
    "reward": "services.reward.app:create_app",
    "embedding": "services.embedding.app:create_app",
    "leaderboard": "services.leaderboard.app:create_app",
    "trainer": "trainer.service:create_app",
}


def models() -> dict[str, type[BaseModel]]:
    """``"<module>.<Model>"`` → every pydantic model defined in a ``schemas`` module."""
    found: dict[str, type[BaseModel]] = {}
    for info in pkgutil.iter_modules(schemas.__path__):
        if info.name == "export":
            continue
        mod = importlib.import_module(f"schemas.{info.name}")
        for name, obj in vars(mod).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseModel)
                and obj.__module__ == mod.__name__
            ):
                found[f"{info.name}.{name}"] = obj
    return dict(sorted(found.items()))


def openapi(service: str) -> dict:
    module, _, attr = APPS[service].partition(":")
    return getattr(importlib.import_module(module), attr)().openapi()


def export(out: Path, services: list[str] = ()) -> list[Path]:  # type: ignore[assignment]
    """Write the schemas (and OpenAPI documents) under ``out``; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, model in models().items():
        path = out / f"{key}.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n")
        written.append(path)
    for service in services:
        path = out / f"openapi.{service}.json"
        path.write_text(json.dumps(openapi(service), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write")
    parser.add_argument("--openapi", nargs="*", default=[], choices=sorted(APPS))
    args = parser.parse_args(argv)
    written = export(args.out, args.openapi)
    import sys

    sys.stdout.write(f"wrote {len(written)} files to {args.out}\n")


if __name__ == "__main__":
    main()
