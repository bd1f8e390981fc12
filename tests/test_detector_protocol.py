"""Every registered method satisfies the Detector protocol and declares the optional hooks the kit calls."""
from __future__ import annotations

import inspect

import pytest

from exdd_lab.features import FeatureConfig
from exdd_lab.methods.base import (
    OPTIONAL_HOOKS, Detector, Explainable, HasAlternatives, Savable, TrainsOnDefects, UsesSyntheticDefects,
)
from exdd_lab.methods.registry import METHODS, build_method

#: What each method can do beyond fit/predict; a method that gains or loses a hook must say so here.
HOOKS = {
    "patchcore": {Savable},
    "exdd": {Savable, Explainable, UsesSyntheticDefects},
    "student-teacher": {Savable, HasAlternatives, UsesSyntheticDefects, TrainsOnDefects},
}


def test_every_registered_method_is_listed():
    assert set(METHODS) == set(HOOKS)


@pytest.mark.parametrize("name", list(HOOKS))
def test_method_satisfies_the_protocol_and_its_hooks(name):
    detector = build_method(name, FeatureConfig(image_size=64), {})
    assert isinstance(detector, Detector) and detector.name == name
    have = {hook for hook in OPTIONAL_HOOKS if isinstance(detector, hook)}
    assert have == HOOKS[name], f"{name} has hooks {sorted(h.__name__ for h in have)}"
    for hook in {Detector} | have:  # the protocol's parameters, in order; anything more must be optional
        for member, declared in vars(hook).items():
            if callable(declared) and not member.startswith("_"):
                want = list(inspect.signature(declared).parameters)
                got = inspect.signature(getattr(type(detector), member)).parameters
                assert list(got)[: len(want)] == want, f"{name}.{member}{tuple(got)} differs from {hook.__name__}.{member}{tuple(want)}"
                extra = list(got.values())[len(want):]
                assert all(p.default is not p.empty for p in extra), f"{name}.{member}: {extra} need defaults"
    if Savable in have:
        assert METHODS[name].saved_as and METHODS[name].load is not None, f"{name} saves but cannot be loaded by name"
    else:
        assert METHODS[name].saved_as is None


def test_train_seed_reaches_the_trained_method_only():
    """``options["train_seed"]`` re-draws the student-teacher (and its synthetic defects) and leaves the coresets
    of PatchCore and ExDD on ``options["seed"]``; without it the trained method follows ``seed``."""
    features = FeatureConfig(image_size=64)
    options = {"seed": 2, "train_seed": 7}
    assert build_method("student-teacher", features, options).config.seed == 7
    assert build_method("student-teacher", features, {"seed": 2}).config.seed == 2
    assert build_method("patchcore", features, options).settings.seed == 2
    assert build_method("exdd", features, options).settings.seed == 2
