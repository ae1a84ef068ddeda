"""The typed keywords of the facades (``ExecutorKeywords``, ``TaskOptionKeywords``) name
exactly the options the runtime accepts (``tests/integration/test_option_errors.py``: how
a bad one is reported)."""

from __future__ import annotations

import typing

import pytest

from osiiso_mp import AsyncExecutor, Executor, TaskOptions
from osiiso_mp._build_config import _EXECUTOR_KEYWORDS
from osiiso_mp._keywords import ExecutorKeywords, TaskOptionKeywords


def test_the_typed_keywords_are_the_options_the_runtime_takes() -> None:
    assert set(typing.get_type_hints(TaskOptionKeywords)) == set(TaskOptions.FIELDS)
    executor = set(typing.get_type_hints(ExecutorKeywords))
    assert executor == (set(_EXECUTOR_KEYWORDS) | set(TaskOptions.FIELDS)) - {"task_id"}


@pytest.mark.parametrize(
    ("init", "options"),
    [(Executor.__init__, Executor.options), (AsyncExecutor.__init__, AsyncExecutor.options)],
)
def test_every_keyword_is_in_the_facades_signature(init: object, options: object) -> None:
    assert typing.get_type_hints(init)["config"] == typing.Unpack[ExecutorKeywords]
    assert typing.get_type_hints(options)["overrides"] == typing.Unpack[TaskOptionKeywords]
