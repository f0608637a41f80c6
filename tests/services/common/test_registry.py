import pytest

from services.common.registry import Registry, UnknownNameError


def test_register_get_and_names():
    reg: Registry[int] = Registry("thing")
    reg.register("one")(1)
    reg.register("two")(2)
    assert reg.get("two") == 2
    assert reg.names() == ["one", "two"]
    assert "one" in reg and "three" not in reg


def test_duplicate_name_raises():
    reg: Registry[int] = Registry("thing")
    reg.register("one")(1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("one")(2)


def test_unknown_name_suggests_closest():
    reg: Registry[int] = Registry("reward component")
    for n in ("f1", "miou", "giou", "iou"):
        reg.register(n)(0)
    with pytest.raises(UnknownNameError) as err:
        reg.get("gioo")
    assert "did you mean 'giou'" in str(err.value)
    assert isinstance(err.value, KeyError)


def test_unknown_name_without_close_match_lists_known():
    reg: Registry[int] = Registry("thing")
    reg.register("alpha")(0)
    with pytest.raises(UnknownNameError) as err:
        reg.get("zzz")
    assert "did you mean" not in str(err.value)
    assert "alpha" in str(err.value)


# ---- built-ins: one loading mechanism, independent of import order -----------------------


def test_builtins_load_on_the_first_read_only(tmp_path, monkeypatch):
    pkg = tmp_path / "prl_plugin_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "reg.py").write_text(
        "from services.common.registry import Registry\n"
        "things = Registry('thing', builtins=('prl_plugin_probe.one', 'prl_plugin_probe.two'))\n"
    )
    (pkg / "one.py").write_text(
        "from prl_plugin_probe.reg import things\nthings.register('one')(1)\n"
    )
    (pkg / "two.py").write_text(
        "from prl_plugin_probe.reg import things\n"
        "SEEN_WHILE_LOADING = things.names()\n"  # re-entrant read: what is registered so far
        "things.register('two')(2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    reg = importlib.import_module("prl_plugin_probe.reg")
    assert "prl_plugin_probe.one" not in sys.modules  # nothing imported at construction
    reg.things.register("extra")(3)  # registering does not load either
    assert "prl_plugin_probe.one" not in sys.modules
    assert reg.things.get("two") == 2
    assert reg.things.names() == ["extra", "one", "two"]
    assert sys.modules["prl_plugin_probe.two"].SEEN_WHILE_LOADING == ["extra", "one"]
    for name in ("prl_plugin_probe", "prl_plugin_probe.reg", "prl_plugin_probe.one"):
        sys.modules.pop(name, None)
    sys.modules.pop("prl_plugin_probe.two", None)


SNAPSHOT = """
import json, sys
for module in sys.argv[1:]:
    __import__(module)
from services.benchmark.adapters.base import adapters
from services.benchmark.metrics.registry import metrics
from services.reward.scoring import advantages, aggregators, components, presets
from tasks.dig.render import renderers
from tasks.registry import tasks
from trainer.objectives.registry import policy_losses, regularizers

def entry(obj):
    if hasattr(obj, "spec") and hasattr(obj, "reproduces"):  # a preset: its whole spec
        return obj.spec.model_dump_json()
    if hasattr(obj, "__qualname__"):  # a function or class
        return f"{obj.__module__}:{obj.__qualname__}"
    fns = [v for v in vars(obj).values() if callable(v) and hasattr(v, "__qualname__")]
    return [type(obj).__name__] + sorted(f"{f.__module__}:{f.__qualname__}" for f in fns)

regs = [adapters, metrics, advantages, aggregators, components, presets, renderers, tasks,
        policy_losses, regularizers]
print(json.dumps({r.kind: {n: entry(o) for n, o in r.items()} for r in regs}, sort_keys=True))
"""

ORDERS = [
    [],
    ["services.reward.scoring.presets"],  # presets before any component module
    ["services.reward.scoring.alignment", "services.reward.scoring.peers"],
    ["trainer.objectives.entropy", "tasks.lisa", "services.benchmark.metrics.masks"],
    ["services.reward.app", "tasks.dig", "services.benchmark.adapters.predictions"],
]


@pytest.mark.torch
def test_every_registry_is_the_same_whatever_is_imported_first():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    snaps = []
    for order in ORDERS:
        res = subprocess.run(
            [sys.executable, "-c", SNAPSHOT, *order],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr
        snaps.append(json.loads(res.stdout.strip().splitlines()[-1]))
    assert all(s == snaps[0] for s in snaps[1:])
    first = snaps[0]
    assert all(first[kind] for kind in first), "every registry has its built-ins"
    # the DEVA presets include the alignment component in every order
    deva = json.loads(first["reward preset"]["deva_detection"])
    assert "alignment" in [c["name"] for c in deva["components"]]
    assert {"alignment", "virft_iou", "f1"} <= set(first["reward component"])
