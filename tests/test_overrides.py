"""The overrides string of `mlflow run -P overrides=...` must reach Hydra exactly as typed."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from embsel_mlflow.cli import expand_overrides_option
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.overrides import split_overrides

CASES = {
    "plain": ("model=minilm data=stsb", ["model=minilm", "data=stsb"]),
    "spaces in a list": (
        "evaluation.k_values=[1, 5, 10] data=stsb",
        ["evaluation.k_values=[1, 5, 10]", "data=stsb"],
    ),
    "quoted string": ("+tracking.tags.note='hello world'", ["+tracking.tags.note='hello world'"]),
    "double quotes": ('+tracking.tags.note="a b" x=1', ['+tracking.tags.note="a b"', "x=1"]),
    "append": ("+tracking.tags.owner=me", ["+tracking.tags.owner=me"]),
    "delete": ("~tracking.tags.owner", ["~tracking.tags.owner"]),
    "force add": ("++tracking.tags.x=1", ["++tracking.tags.x=1"]),
    "dict value": ("+tracking.tags={a: 1, b: two}", ["+tracking.tags={a: 1, b: two}"]),
    "glob chars": ("+tracking.tags.pattern='*.csv'", ["+tracking.tags.pattern='*.csv'"]),
    "nested brackets": ("x=[[1, 2], [3]]  y=2", ["x=[[1, 2], [3]]", "y=2"]),
    "quote inside brackets": ("x=['a b', c]", ["x=['a b', c]"]),
    "escaped space": (r"x=a\ b", [r"x=a\ b"]),
    "sweep": ("model=a,b data=c", ["model=a,b", "data=c"]),
    "empty": ("   ", []),
}


@pytest.mark.parametrize("text,expected", CASES.values(), ids=CASES.keys())
def test_split_keeps_overrides_as_typed(text: str, expected: list[str]) -> None:
    assert split_overrides(text) == expected


@pytest.mark.parametrize("text,expected", CASES.values(), ids=CASES.keys())
def test_split_result_parses_in_hydra(text: str, expected: list[str]) -> None:
    parsed = OverridesParser.create().parse_overrides(split_overrides(text))
    assert len(parsed) == len(expected)


def test_quoted_value_reaches_hydra_unquoted() -> None:
    (override,) = OverridesParser.create().parse_overrides(split_overrides("+a.b='hello world'"))
    assert override.value() == "hello world"


@pytest.mark.parametrize("text", ["x=[1, 2", "x='abc", 'x="abc', "x=1]", "x={a: [1}"])
def test_unbalanced_input_is_a_one_line_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        split_overrides(text)
    assert "\n" not in str(info.value)


def test_overrides_option_is_spliced_in_place() -> None:
    args = ["-m", "--overrides", "a=1 b=[2, 3]", "c=4", "--overrides=d='x y'"]
    assert expand_overrides_option(args) == ["-m", "a=1", "b=[2, 3]", "c=4", "d='x y'"]
