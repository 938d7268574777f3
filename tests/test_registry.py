"""The one registry type behind backbones, strategies and methods
(``sktransfer._registry``)."""

import pytest

from sktransfer._registry import Registry


class _Base:
    name = None


def _registry():
    return Registry("gadget", "gadget", "register_gadget", alternatives=", or a box")


def test_entries_keep_registration_order():
    reg = _registry()
    assert reg.add("b", 1) == 1 and reg.add("a", 2) == 2
    assert reg.names() == ["b", "a"]
    assert reg.get("a") == 2


def test_a_name_is_taken_once_unless_overwritten():
    reg = _registry()
    reg.add("x", 1)
    with pytest.raises(ValueError, match="A gadget named 'x' is already registered"):
        reg.add("x", 2)
    reg.add("x", 2, overwrite=True)
    assert reg.get("x") == 2 and reg.names() == ["x"]
    for bad in ("", None, 3):
        with pytest.raises(TypeError, match="non-empty str"):
            reg.add(bad, 1)


def test_add_named_takes_a_class_or_an_instance():
    reg = _registry()

    class Thing(_Base):
        name = "thing"

    assert reg.add_named(Thing, _Base) is Thing  # usable as a class decorator
    assert isinstance(reg.get("thing"), Thing)
    other = Thing()
    assert reg.add_named(other, _Base, overwrite=True) is other
    assert reg.get("thing") is other
    with pytest.raises(TypeError, match="_Base subclass or instance"):
        reg.add_named(_Base, _Base)  # no name
    with pytest.raises(TypeError, match="_Base subclass or instance"):
        reg.add_named(object(), _Base)


def test_unknown_names_list_the_registered_ones():
    reg = _registry()
    reg.add("x", 1)
    with pytest.raises(ValueError) as info:
        reg.get("y")
    assert str(info.value) == (
        "gadget='y' is not a registered gadget. Use one of ['x'], or a box, or "
        "register your own with register_gadget."
    )
    with pytest.raises(ValueError, match="not a registered gadget"):
        reg.get(["unhashable"])
