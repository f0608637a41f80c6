import json

from typer.testing import CliRunner

from services.cli import load_commands
from services.cli.base import app


def test_prl_data_dig_writes_dataset_and_prints_version(tmp_path):
    load_commands()
    out = tmp_path / "dig"
    result = CliRunner().invoke(
        app, ["data", "dig", "--out", str(out), "--n", "4", "--split", "dual", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    info = json.loads((out / "dataset.json").read_text())
    assert printed["version"] == info["version"] and info["counts"] == {"dual": 4}
    rows = (out / "manifest.jsonl").read_text().splitlines()
    assert len(rows) == 4 and all(len(json.loads(r)["boxes"]) == 2 for r in rows)


def test_prl_data_dig_rejects_unknown_split(tmp_path):
    load_commands()
    result = CliRunner().invoke(app, ["data", "dig", "--out", str(tmp_path), "--split", "triple"])
    assert result.exit_code != 0
    assert "triple" in result.output
