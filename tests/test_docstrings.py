"""Every public class and function has a numpydoc docstring that documents
each of its parameters (numpydoc's validator, as scikit-learn's own test)."""

import importlib
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

PUBLIC_MODULES = [
    "sktransfer",
    "sktransfer.adaptation",
    "sktransfer.augmentation",
    "sktransfer.backbones",
    "sktransfer.conformal",
    "sktransfer.data",
    "sktransfer.datasets",
    "sktransfer.ensemble",
    "sktransfer.exceptions",
    "sktransfer.finetuning",
    "sktransfer.heads",
    "sktransfer.losses",
    "sktransfer.model_selection",
    "sktransfer.persistence",
    "sktransfer.onnx",
    "sktransfer.plotting",
    "sktransfer.pretraining",
]
# a docstring is missing (GL08), a parameter is undocumented (PR01), documented
# but not in the signature (PR02), or has no description (PR07)
CHECKED = {"GL08", "PR01", "PR02", "PR07"}
# methods scikit-learn, skorch or torch define and document for us
INHERITED = {"forward", "extra_repr"}


def _documented_above(cls, attr):
    """An override of a method a base class documents (its docs apply)."""
    return any(
        attr in vars(base) and getattr(base, attr).__doc__ for base in cls.__mro__[1:]
    )


def _public_objects():
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            yield f"{obj.__module__}.{obj.__qualname__}"
            if not inspect.isclass(obj):
                continue
            for attr, member in vars(obj).items():
                if attr in INHERITED or _documented_above(obj, attr):
                    continue
                if attr.startswith("_") and attr != "__call__":
                    continue
                if inspect.isfunction(member) or isinstance(
                    member, property | classmethod | staticmethod
                ):
                    yield f"{obj.__module__}.{obj.__qualname__}.{attr}"


OBJECTS = sorted(set(_public_objects()))


def test_public_surface_is_found():
    names = " ".join(OBJECTS)
    for expected in ("TransferRegressor.fit", "DomainAdaptRegressor.predict"):
        assert expected in names or expected.split(".")[0] in names


@pytest.mark.parametrize("name", OBJECTS)
def test_docstring_documents_every_parameter(name):
    result = numpydoc_validate.validate(name)
    errors = [f"{code}: {msg}" for code, msg in result["errors"] if code in CHECKED]
    assert not errors, f"{name}:\n" + "\n".join(errors)


def undocumented_parameter(a, b):
    """A function whose docstring forgets ``b``.

    Parameters
    ----------
    a : int
        Documented.
    """


def test_validator_catches_an_undocumented_parameter():
    result = numpydoc_validate.validate(f"{__name__}.undocumented_parameter")
    assert "PR01" in {code for code, _ in result["errors"]}
