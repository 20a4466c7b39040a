"""Typed confirmation (engine/confirm.py): never an empty phrase, exact match only."""

from __future__ import annotations

import pytest

from ambient_tui.engine.confirm import LAST_RESORT, Target, confirmation_phrase, confirmed, phrase_kind


@pytest.mark.parametrize("target, phrase", [
    (Target(cluster="prod-eks"), "prod-eks"),
    ("prod-eks", "prod-eks"),
    (Target(cluster="", context="admin@prod"), "admin@prod"),
    (Target(cluster="  ", context="\t", server="https://ABC123.gr7.eu-west-1.eks.amazonaws.com"),
     "abc123.gr7.eu-west-1.eks.amazonaws.com"),
    (Target(server="https://127.0.0.1:6443"), "127.0.0.1"),
    (Target(server="10.0.0.7:443"), "10.0.0.7"),
    (Target(), LAST_RESORT),
    (Target(cluster=" ", server="https://:6443"), LAST_RESORT),
    ("", LAST_RESORT),
])
def test_phrase_is_never_empty(target, phrase):
    got = confirmation_phrase(target)
    assert got == phrase and got.strip() == got and got
    assert phrase_kind(target, got)


def test_kind_names_what_to_type():
    t = Target(cluster="", context="", server="https://10.1.1.1")
    assert "API server host" in phrase_kind(t, confirmation_phrase(t))
    assert phrase_kind("demo", "demo") == "the cluster name"


@pytest.mark.parametrize("typed", ["", " ", "   ", "\t", "\n", "prod", "prod-ek", "PROD-EKS", "Prod-eks",
                                   " prod-eks", "prod-eks ", "prod-eks\n", "prod-eks-2", None])
def test_near_misses_are_refused(typed):
    assert not confirmed(typed, "prod-eks")


def test_exact_phrase_confirms():
    assert confirmed("prod-eks", "prod-eks")
    assert confirmed(LAST_RESORT, confirmation_phrase(Target()))


@pytest.mark.parametrize("phrase", ["", " ", "\t\n"])
def test_an_empty_phrase_confirms_nothing(phrase):
    # Even a caller that built its own blank phrase cannot get an empty match.
    assert not confirmed(phrase, phrase)
    assert not confirmed("", phrase)
