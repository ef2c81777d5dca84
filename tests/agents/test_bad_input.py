"""make_dispatcher with options of the wrong type, as they arrive from YAML files and KEY=VALUE flags."""

from __future__ import annotations

import pytest

from agents import make_dispatcher
from esd_gym.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "options", "problem"),
    [
        ("hash", {"table": "a"}, "option table: Input should be a valid integer"),
        ("hash", {"table": 1.5}, "option table: Input should be a valid integer, got a number with a fractional part"),
        ("hash", {"table": True}, "option table: expected a number, not a boolean"),
        ("hybriddis", {"budget_s": "fast"}, "option budget_s: Input should be a valid number"),
        ("hybriddis", {"max_windows": "a"}, "option max_windows: Input should be a valid integer"),
        ("hybriddis-optimal", {"time_limit_s": [10]}, "option time_limit_s: Input should be a valid number"),
    ],
)
def test_option_of_wrong_type(name, options, problem):
    with pytest.raises(ConfigError) as error:
        make_dispatcher(name, **options)
    message = str(error.value)
    assert f"dispatcher {name!r} {problem}" in message
    assert f"(got {next(iter(options.values()))!r})" in message


def test_numeric_text_option_is_converted():
    # PyYAML reads 1e-1 as the string "1e-1"; the configuration files accept it as a number, and so do options.
    dispatcher = make_dispatcher("hybriddis", budget_s="1e-1", max_windows="3")
    assert dispatcher.budget_s == 0.1
    assert dispatcher.max_windows == 3


def test_none_option_where_allowed():
    assert make_dispatcher("hybriddis", window_size=None).window_size is None
