"""Local checkpoint paths vs hub ids: a missing local path is an error, never a hub lookup."""

from __future__ import annotations

import pytest

from services.common.model_paths import ModelPathError, check_model_ref, looks_local


@pytest.mark.parametrize(
    ("ref", "local"),
    [
        ("/abs/model", True),
        ("./m", True),
        ("../m", True),
        ("~/m", True),
        ("a/b/c", True),
        ("m/", True),
        ("Qwen/Qwen2.5-VL-3B-Instruct", False),
        ("gpt2", False),
    ],
)
def test_looks_local(ref, local):
    assert looks_local(ref) is local


def test_org_name_is_local_when_its_first_part_exists_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not looks_local("out/tiny")
    (tmp_path / "out").mkdir()
    assert looks_local("out/tiny")
    with pytest.raises(ModelPathError, match="'out/tiny' does not exist"):
        check_model_ref("out/tiny")


def test_a_directory_needs_a_config_json(tmp_path):
    with pytest.raises(ModelPathError, match=r"no config\.json"):
        check_model_ref(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    check_model_ref(tmp_path)
    with pytest.raises(ModelPathError, match="is a file"):
        check_model_ref(tmp_path / "config.json")
    check_model_ref("Qwen/Qwen2.5-VL-3B-Instruct")  # a hub id passes (the loader fetches it)
