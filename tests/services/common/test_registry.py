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
