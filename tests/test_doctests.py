"""The examples in the docstrings run and print what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "xrdnb.vocabulary",
    "xrdnb.structures",
    "xrdnb.crystal",
    "xrdnb.lattice",
    "xrdnb.reflections",
    "xrdnb.scattering",
    "xrdnb.profiles",
    "xrdnb.pattern",
    "xrdnb.peaks",
    "xrdnb.symmetry",
    "xrdnb.distortions",
    "xrdnb.losses",
    "xrdnb.optimize",
    "xrdnb.evaluate",
    "xrdnb.sweep",
    "xrdnb.device",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
