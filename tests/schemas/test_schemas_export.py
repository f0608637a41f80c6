import json

import pytest
from pydantic import ValidationError

from schemas.export import export, main, models
from schemas.geometry import Frame
from schemas.reward import BoxSolution, GroupsRequest, RewardSpec, Sample


def test_export_writes_every_model_and_the_reward_openapi(tmp_path):
    written = export(tmp_path, ["reward"])
    names = {p.name for p in written}
    assert "reward.Sample.json" in names and "geometry.Frame.json" in names
    schema = json.loads((tmp_path / "reward.GroupsRequest.json").read_text())
    assert set(schema["required"]) >= {"reward", "groups"}
    api = json.loads((tmp_path / "openapi.reward.json").read_text())
    assert {"/v1/score", "/v1/score/groups", "/v1/rewards", "/v1/aggregate", "/get_reward"} <= set(
        api["paths"]
    )
    assert len(models()) == len([n for n in names if not n.startswith("openapi.")])


def test_cli(tmp_path, capsys):
    main([str(tmp_path)])
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "reward.RewardSpec.json").exists()


def test_wire_contract_field_names():
    sample = Sample.model_validate(
        {
            "id": "a",
            "completion": "x",
            "solution": {"boxes": [[0, 0, 1, 1]]},
            "frame": {"coords": "pixel"},
        }
    )
    assert isinstance(sample.solution, BoxSolution)
    req = GroupsRequest.model_validate(
        {
            "reward": "dig",
            "groups": [{"id": "g", "solution": {"label": "cat"}, "completions": ["a"]}],
        }
    )
    assert req.advantage == "grpo"
    assert (
        RewardSpec.model_validate({"components": [{"name": "f1"}]}).aggregate.method == "harmonic"
    )


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ({"boxes": [[2, 0, 1, 1]]}, "x1 <= x2"),
        ({"boxes": [[0, 0, float("nan"), 1]]}, "finite"),
        ({"boxes": [[0, 0, 1, 1]], "labels": ["a", "b"]}, "one label per box"),
    ],
)
def test_gt_boxes_are_validated(bad, fragment):
    with pytest.raises(ValidationError, match=fragment):
        BoxSolution.model_validate(bad)


def test_frame_needs_sizes():
    with pytest.raises(ValidationError, match="image_size"):
        Frame(coords="norm1")
    with pytest.raises(ValidationError, match="input_size"):
        Frame(coords="input", image_size=(10, 10))
