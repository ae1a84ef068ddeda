"""TaskOptions, resolve_options, ExecutorConfig and build_config."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import pickle
from fractions import Fraction
from typing import Any

import pytest

from osiiso_mp._build_config import _default_start_method, build_config
from osiiso_mp._checks import check_choice
from osiiso_mp._config import DEFAULT_RETAIN_BYTES, START_METHODS, ExecutorConfig
from osiiso_mp._task_options import TaskOptions, resolve_options

# --------------------------------------------------------------------------- TaskOptions


def test_defaults_match_the_contract() -> None:
    opts = TaskOptions()
    assert [f.name for f in dataclasses.fields(TaskOptions)] == [
        "priority",
        "must_complete",
        "timeout",
        "retries",
        "retry_delay",
        "backoff",
        "delay",
        "run_at",
        "name",
        "group_id",
        "detached",
        "metadata",
        "task_id",
    ]
    assert opts.priority == 3
    assert opts.must_complete is False
    assert opts.timeout is None
    assert opts.retries == 0
    assert opts.retry_delay == 0.0
    assert opts.backoff == 1.0
    assert opts.delay is None
    assert opts.run_at is None
    assert opts.name is None
    assert opts.group_id is None
    assert opts.detached is False
    assert opts.metadata is None
    assert opts.task_id is None


def test_fields_classvar_lists_every_option() -> None:
    assert frozenset(f.name for f in dataclasses.fields(TaskOptions)) == TaskOptions.FIELDS
    assert "FIELDS" not in TaskOptions.FIELDS


def test_frozen_and_slotted() -> None:
    opts = TaskOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.priority = 1  # type: ignore[misc]
    assert not hasattr(opts, "__dict__")


def test_hashable_even_with_unhashable_metadata_and_equal_when_equal() -> None:
    a = TaskOptions(retries=2, metadata={"k": [1]})
    b = TaskOptions(retries=2, metadata={"k": [1]})
    assert a == b
    assert hash(a) == hash(b)
    assert a != TaskOptions(retries=2, metadata={"k": [2]})


def test_numbers_are_normalised() -> None:
    opts = TaskOptions(timeout=5, retry_delay=1, backoff=2, delay=0)
    assert type(opts.timeout) is float and opts.timeout == 5.0
    assert type(opts.retry_delay) is float
    assert type(opts.backoff) is float
    assert type(opts.delay) is float
    assert type(TaskOptions(run_at=1_700_000_000).run_at) is float
    assert TaskOptions(timeout=5) == TaskOptions(timeout=5.0)
    assert TaskOptions(timeout=Fraction(1, 2)).timeout == 0.5  # type: ignore[arg-type]


def test_pickles() -> None:
    opts = TaskOptions(priority=-1, timeout=2.5, name="n", group_id=("g", 1), metadata=[1])
    assert pickle.loads(pickle.dumps(opts)) == opts


def test_repr_lists_only_non_defaults() -> None:
    assert repr(TaskOptions()) == "TaskOptions()"
    assert repr(TaskOptions(retries=3, timeout=30)) == "TaskOptions(timeout=30.0, retries=3)"


@pytest.mark.parametrize("priority", [-(10**6), -1, 0, 3, 10**9])
def test_priority_any_int(priority: int) -> None:
    assert TaskOptions(priority=priority).priority == priority


# Each case: keyword arguments, expected exception type, text the message must contain.
BAD_OPTIONS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"priority": True}, TypeError, "priority must be an int"),
    ({"priority": 1.0}, TypeError, "priority must be an int"),
    ({"priority": "1"}, TypeError, "priority"),
    ({"must_complete": 1}, TypeError, "must_complete must be True or False"),
    ({"must_complete": None}, TypeError, "must_complete"),
    ({"detached": "yes"}, TypeError, "detached must be True or False"),
    ({"timeout": -1}, ValueError, "timeout must be a positive number of seconds, got -1"),
    ({"timeout": 0}, ValueError, "timeout must be a positive number of seconds, got 0"),
    ({"timeout": math.inf}, ValueError, "timeout"),
    ({"timeout": math.nan}, ValueError, "timeout"),
    ({"timeout": True}, TypeError, "timeout"),
    ({"timeout": "5"}, TypeError, "timeout"),
    ({"retries": -1}, ValueError, "retries must be an int >= 0, got -1"),
    ({"retries": 1.0}, TypeError, "retries"),
    ({"retries": False}, TypeError, "retries"),
    ({"retry_delay": -0.5}, ValueError, "retry_delay"),
    ({"retry_delay": math.inf}, ValueError, "retry_delay"),
    ({"retry_delay": None}, TypeError, "retry_delay"),
    ({"backoff": 0.99}, ValueError, "backoff must be a finite number >= 1.0"),
    ({"backoff": math.nan}, ValueError, "backoff"),
    ({"backoff": "2"}, TypeError, "backoff"),
    ({"delay": -1}, ValueError, "delay"),
    ({"delay": math.inf}, ValueError, "delay"),
    ({"delay": True}, TypeError, "delay"),
    ({"run_at": math.nan}, ValueError, "run_at"),
    ({"run_at": -math.inf}, ValueError, "run_at"),
    ({"run_at": "tomorrow"}, TypeError, "run_at"),
    ({"delay": 1, "run_at": 2e9}, ValueError, "delay and run_at"),
    ({"name": ""}, ValueError, "name must be a non-empty string"),
    ({"name": 3}, TypeError, "name must be a str"),
    ({"task_id": ""}, ValueError, "task_id must be a non-empty string"),
    ({"task_id": "a b"}, ValueError, "task_id must not contain whitespace"),
    ({"task_id": "ab\n"}, ValueError, "task_id must not contain whitespace"),
    ({"task_id": "x\tb"}, ValueError, "task_id"),
    ({"task_id": "x" * 201}, ValueError, "task_id must be at most 200 characters"),
    ({"task_id": 12}, TypeError, "task_id"),
    ({"group_id": ["a"]}, TypeError, "group_id must be hashable"),
    ({"group_id": {"a": 1}}, TypeError, "group_id"),
]


@pytest.mark.parametrize(("kwargs", "exc", "text"), BAD_OPTIONS)
def test_bad_options_raise_naming_the_option(
    kwargs: dict[str, Any], exc: type[Exception], text: str
) -> None:
    with pytest.raises(exc) as info:
        TaskOptions(**kwargs)
    assert type(info.value) is exc  # TypeError vs ValueError, not a subclass of either
    assert text in str(info.value)


def test_delay_run_at_message_names_both() -> None:
    with pytest.raises(ValueError, match=r"delay and run_at are mutually exclusive") as info:
        TaskOptions(delay=5, run_at=1_700_000_000.0)
    assert "delay=5.0" in str(info.value) and "run_at=1700000000.0" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0.001},
        {"timeout": 10**6},
        {"retries": 0},
        {"retry_delay": 0},
        {"backoff": 1},
        {"delay": 0},
        {"run_at": 0},
        {"run_at": -5.0},
        {"name": "x"},
        {"task_id": "x" * 200},
        {"task_id": "job-1/part:2"},
        {"group_id": ("a", 1)},
        {"group_id": frozenset({1})},
        {"must_complete": True, "detached": True},
        {"delay": None, "run_at": 5.0},
    ],
)
def test_valid_edge_values_are_accepted(kwargs: dict[str, Any]) -> None:
    opts = TaskOptions(**kwargs)
    for key, value in kwargs.items():
        assert getattr(opts, key) == value


def test_huge_int_timeout_is_out_of_range_not_a_crash() -> None:
    with pytest.raises(ValueError, match="timeout"):
        TaskOptions(timeout=10**400)


# --------------------------------------------------------------------------- replace / resolve


def test_replace_applies_and_keeps_the_rest() -> None:
    base = TaskOptions(priority=1, retries=2, name="n")
    changed = base.replace(retries=5, timeout=3)
    assert changed == TaskOptions(priority=1, retries=5, name="n", timeout=3.0)
    assert base.retries == 2  # unchanged
    assert base.replace() is base


def test_replace_validates() -> None:
    with pytest.raises(ValueError, match="retries"):
        TaskOptions().replace(retries=-1)
    with pytest.raises(ValueError, match="delay and run_at"):
        TaskOptions(delay=1).replace(run_at=5.0)
    # replacing one of the exclusive pair by None is fine
    assert TaskOptions(delay=1).replace(delay=None, run_at=5.0).run_at == 5.0


def test_replace_unknown_option() -> None:
    with pytest.raises(TypeError) as info:
        TaskOptions().replace(foo=1)
    message = str(info.value)
    assert message.startswith("unknown task option 'foo'; valid options: priority, ")
    assert all(name in message for name in TaskOptions.FIELDS)


def test_replace_unknown_option_suggests_a_close_name() -> None:
    with pytest.raises(TypeError, match=r"did you mean 'retries'\?"):
        TaskOptions().replace(retry=1)


def test_resolve_options_without_opts_uses_base() -> None:
    base = TaskOptions(retries=2)
    assert resolve_options(base) is base
    assert resolve_options(base, timeout=4) == TaskOptions(retries=2, timeout=4.0)


def test_resolve_options_opts_replace_base_entirely() -> None:
    base = TaskOptions(retries=2, priority=0)
    opts = TaskOptions(name="x")
    assert resolve_options(base, opts) is opts
    assert resolve_options(base, opts, priority=9) == TaskOptions(name="x", priority=9)


def test_resolve_options_errors() -> None:
    with pytest.raises(TypeError, match="unknown task option 'nope'"):
        resolve_options(TaskOptions(), nope=1)
    with pytest.raises(TypeError, match="opts must be a TaskOptions"):
        resolve_options(TaskOptions(), {"retries": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="base must be a TaskOptions"):
        resolve_options(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        resolve_options(TaskOptions(), timeout=-1)


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    ("retry_delay", "backoff", "k", "expected"),
    [
        (0.0, 1.0, 1, 0.0),
        (0.0, 10.0, 50, 0.0),
        (1.5, 1.0, 1, 1.5),
        (1.5, 1.0, 7, 1.5),
        (1.0, 2.0, 1, 1.0),
        (1.0, 2.0, 2, 2.0),
        (1.0, 2.0, 4, 8.0),
        (0.5, 3.0, 3, 4.5),
    ],
)
def test_retry_delay_for(retry_delay: float, backoff: float, k: int, expected: float) -> None:
    opts = TaskOptions(retry_delay=retry_delay, backoff=backoff)
    assert opts.retry_delay_for(k) == pytest.approx(expected)


def test_retry_delay_for_overflow_is_infinite() -> None:
    assert TaskOptions(retry_delay=1, backoff=10).retry_delay_for(10_000) == math.inf


@pytest.mark.parametrize("k", [0, -1])
def test_retry_delay_for_rejects_k_below_one(k: int) -> None:
    with pytest.raises(ValueError, match="k must be a retry number >= 1"):
        TaskOptions(retry_delay=1).retry_delay_for(k)


def test_first_start_after() -> None:
    now = 1_700_000_000.0
    assert TaskOptions().first_start_after(now) is None
    assert TaskOptions(delay=2.5).first_start_after(now) == 2.5
    assert TaskOptions(delay=0).first_start_after(now) == 0.0
    assert TaskOptions(run_at=now + 10).first_start_after(now) == pytest.approx(10.0)
    assert TaskOptions(run_at=now).first_start_after(now) == 0.0
    assert TaskOptions(run_at=now - 3600).first_start_after(now) == 0.0


# --------------------------------------------------------------------------- check_choice


def test_check_choice() -> None:
    allowed = ("continue", "fail_first")
    assert check_choice("fail_policy", "fail_first", allowed) == "fail_first"
    with pytest.raises(ValueError) as info:
        check_choice("fail_policy", "stop", allowed)
    assert str(info.value) == "fail_policy must be one of 'continue', 'fail_first', got 'stop'"
    with pytest.raises(ValueError, match="on_timeout must be one of"):
        check_choice("on_timeout", None, ["complete", "cancel"])
    with pytest.raises(ValueError, match="got 1"):
        check_choice("x", 1, ["1"])


# --------------------------------------------------------------------------- ExecutorConfig


def _budget() -> int:
    return 6


def _build(procs: int | None = None, **kwargs: Any) -> ExecutorConfig:
    return build_config(procs, kwargs, cpu_budget=_budget)


def _init(*args: object) -> None:
    """A worker initializer."""


def test_build_config_defaults() -> None:
    config = _build()
    assert config.procs == 6
    assert config.start_method == _default_start_method()
    assert config.concurrency == 100
    assert config.initializer is None
    assert config.initargs == ()
    assert config.max_tasks_per_worker is None
    assert config.result_ttl == 300.0
    assert config.default_options == TaskOptions()


def test_executor_config_field_defaults() -> None:
    config = ExecutorConfig(procs=2, start_method="spawn")
    assert config.concurrency == 100
    assert config.result_ttl == 300.0
    assert config.default_options == TaskOptions()


def test_default_start_method_per_platform() -> None:
    assert _default_start_method("linux") == "forkserver"
    assert _default_start_method("darwin") == "spawn"
    assert START_METHODS == ("spawn", "forkserver")


def test_cpu_budget_is_only_called_when_procs_is_none() -> None:
    calls: list[int] = []

    def budget() -> int:
        calls.append(1)
        return 3

    assert build_config(4, {}, cpu_budget=budget).procs == 4
    assert calls == []
    assert build_config(None, {}, cpu_budget=budget).procs == 3
    assert calls == [1]


def test_procs_and_max_workers_are_aliases() -> None:
    assert _build(max_workers=3).procs == 3
    assert _build(5).procs == 5
    assert _build(2, max_workers=2).procs == 2
    assert _build(None, max_workers=None).procs == 6
    with pytest.raises(ValueError, match="procs and max_workers are aliases"):
        _build(2, max_workers=3)


@pytest.mark.parametrize(
    ("procs", "kwargs", "exc", "text"),
    [
        (0, {}, ValueError, "procs must be greater than 0, got 0"),
        (-2, {}, ValueError, "procs"),
        (True, {}, TypeError, "procs"),
        (2.0, {}, TypeError, "procs"),
        ("4", {}, TypeError, "procs"),
        (None, {"max_workers": 0}, ValueError, "max_workers must be greater than 0, got 0"),
        (None, {"max_workers": "3"}, TypeError, "max_workers"),
    ],
)
def test_bad_procs(procs: Any, kwargs: dict[str, Any], exc: type[Exception], text: str) -> None:
    with pytest.raises(exc) as info:
        _build(procs, **kwargs)
    assert type(info.value) is exc
    assert text in str(info.value)


def test_start_method_values() -> None:
    assert _build(start_method="spawn").start_method == "spawn"
    assert _build(start_method="forkserver").start_method == "forkserver"
    # osiiso_mp never forks a threaded parent: "fork" means forkserver
    assert _build(start_method="fork").start_method == "forkserver"
    with pytest.raises(ValueError) as info:
        _build(start_method="thread")
    assert str(info.value) == "start_method must be one of 'spawn', 'forkserver', got 'thread'"
    with pytest.raises(ValueError, match="start_method must be one of"):
        _build(start_method=3)


@pytest.mark.parametrize(
    ("method", "expected"),
    [("spawn", "spawn"), ("forkserver", "forkserver"), ("fork", "forkserver")],
)
def test_mp_context(method: str, expected: str) -> None:
    ctx = multiprocessing.get_context(method)
    assert _build(mp_context=ctx).start_method == expected


def test_mp_context_duck_typed_and_errors() -> None:
    class Ctx:
        def get_start_method(self) -> str:
            return "spawn"

    class Bad:
        def get_start_method(self) -> str:
            return "threads"

    assert _build(mp_context=Ctx()).start_method == "spawn"
    with pytest.raises(ValueError, match=r"mp_context.* must be one of 'spawn', 'forkserver'"):
        _build(mp_context=Bad())
    with pytest.raises(TypeError, match="mp_context must be a multiprocessing context"):
        _build(mp_context="spawn")
    with pytest.raises(ValueError, match="mp_context or start_method, not both"):
        _build(mp_context=multiprocessing.get_context("spawn"), start_method="spawn")


def test_default_context_does_not_fix_the_global_start_method() -> None:
    # the module-level default context answers None while unset, and must stay unset
    default = multiprocessing.context._default_context
    before = default.get_start_method(allow_none=True)
    config = _build(mp_context=default)
    assert default.get_start_method(allow_none=True) == before
    expected = _default_start_method() if before in (None, "fork") else before
    assert config.start_method == expected


def test_initializer_and_initargs() -> None:
    config = _build(initializer=_init, initargs=[1, "a"])
    assert config.initializer is _init
    assert config.initargs == (1, "a")
    assert _build(initargs=(x for x in range(3))).initargs == (0, 1, 2)
    with pytest.raises(TypeError, match="initializer must be callable or None"):
        _build(initializer=42)
    with pytest.raises(TypeError, match="initargs must be an iterable"):
        _build(initargs=5)
    with pytest.raises(TypeError, match=r"initargs .*\('ab',\)"):
        _build(initargs="ab")


def test_max_tasks_aliases() -> None:
    assert _build(max_tasks_per_child=10).max_tasks_per_worker == 10
    assert _build(max_tasks_per_worker=4).max_tasks_per_worker == 4
    assert _build(max_tasks_per_worker=4, max_tasks_per_child=4).max_tasks_per_worker == 4
    assert _build(max_tasks_per_child=None).max_tasks_per_worker is None
    with pytest.raises(ValueError, match="max_tasks_per_worker and max_tasks_per_child"):
        _build(max_tasks_per_worker=4, max_tasks_per_child=5)
    with pytest.raises(ValueError, match="max_tasks_per_child must be an int >= 1"):
        _build(max_tasks_per_child=0)
    with pytest.raises(TypeError, match="max_tasks_per_worker"):
        _build(max_tasks_per_worker=2.5)


def test_concurrency_and_result_ttl() -> None:
    config = _build(concurrency=8)
    assert config.concurrency == 8
    with pytest.raises(ValueError, match="concurrency must be an int >= 1, got 0"):
        _build(concurrency=0)
    with pytest.raises(TypeError, match="concurrency"):
        _build(concurrency=None)
    assert ExecutorConfig(procs=1, start_method="spawn", result_ttl=0).result_ttl == 0.0
    inf_ttl = ExecutorConfig(procs=1, start_method="spawn", result_ttl=math.inf)
    assert inf_ttl.result_ttl == math.inf
    with pytest.raises(ValueError, match="result_ttl"):
        ExecutorConfig(procs=1, start_method="spawn", result_ttl=-1)
    with pytest.raises(ValueError, match="result_ttl"):
        ExecutorConfig(procs=1, start_method="spawn", result_ttl=math.nan)
    with pytest.raises(TypeError, match="result_ttl"):
        ExecutorConfig(procs=1, start_method="spawn", result_ttl="5m")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "bad", "exc"),
    [
        ("fail_policy", "stop", ValueError),
        ("on_timeout", "wait", ValueError),
        ("rate", 0, ValueError),
        ("rate", -1.5, ValueError),
        ("rate", "fast", TypeError),
        ("burst", 0, ValueError),
        ("max_pending", 0, ValueError),
        ("on_complete", "print", TypeError),
    ],
)
def test_policy_keywords_are_validated(key: str, bad: object, exc: type[Exception]) -> None:
    kwargs: dict[str, Any] = {key: bad}
    with pytest.raises(exc, match=key):
        _build(**kwargs)


def test_policy_keywords_are_accepted() -> None:
    config = _build(
        fail_policy="fail_first",
        on_timeout="cancel",
        rate=10,
        burst=3,
        max_pending=100,
        on_complete=print,
    )
    assert config.fail_policy == "fail_first" and config.on_timeout == "cancel"
    assert config.rate == 10.0 and config.burst == 3 and config.max_pending == 100
    assert config.on_complete is print
    message = "fail_policy must be one of 'continue', 'fail_first', got 'stop'"
    with pytest.raises(ValueError, match=message):
        _build(fail_policy="stop")
    assert _build(result_ttl=5).result_ttl == 5.0


def test_task_option_keywords_set_default_options() -> None:
    config = _build(retries=2, timeout=30, priority=1, group_id="g", must_complete=True)
    assert config.default_options == TaskOptions(
        retries=2, timeout=30.0, priority=1, group_id="g", must_complete=True
    )


def test_task_option_keywords_are_validated() -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        _build(timeout=-1)
    with pytest.raises(TypeError, match="must_complete"):
        _build(must_complete="yes")
    with pytest.raises(ValueError, match="delay and run_at"):
        _build(delay=1, run_at=2.0)


def test_task_id_is_not_an_executor_default() -> None:
    with pytest.raises(ValueError, match="task_id cannot be an executor default"):
        _build(task_id="abc")
    assert _build(task_id=None).default_options == TaskOptions()
    with pytest.raises(ValueError, match="task_id cannot be an executor default"):
        ExecutorConfig(procs=1, start_method="spawn", default_options=TaskOptions(task_id="x"))


def test_unknown_keyword() -> None:
    with pytest.raises(TypeError) as info:
        _build(foo=1)
    assert str(info.value) == "Executor() got an unexpected keyword argument 'foo'"
    with pytest.raises(TypeError, match=r"'retrys' \(did you mean 'retries'\?\)"):
        _build(retrys=1)
    with pytest.raises(TypeError, match="multiple values for argument 'procs'"):
        build_config(2, {"procs": 3}, cpu_budget=_budget)


def test_unknown_keyword_is_reported_before_bad_values() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        _build(0, foo=1)


def test_build_config_does_not_mutate_kwargs() -> None:
    kwargs: dict[str, Any] = {"max_workers": 2, "retries": 1, "start_method": "spawn"}
    snapshot = dict(kwargs)
    build_config(None, kwargs, cpu_budget=_budget)
    assert kwargs == snapshot


def test_executor_config_validates_direct_construction() -> None:
    with pytest.raises(ValueError, match="procs"):
        ExecutorConfig(procs=0, start_method="spawn")
    with pytest.raises(ValueError, match="start_method"):
        ExecutorConfig(procs=1, start_method="thread")
    assert ExecutorConfig(procs=1, start_method="fork").start_method == "forkserver"
    with pytest.raises(TypeError, match="default_options"):
        ExecutorConfig(procs=1, start_method="spawn", default_options={})  # type: ignore[arg-type]
    config = ExecutorConfig(procs=1, start_method="spawn", initargs=[1])  # type: ignore[arg-type]
    assert config.initargs == (1,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.procs = 3  # type: ignore[misc]


# --------------------------------------------------------------------------- resource caps


def test_resource_caps_default_to_none() -> None:
    config = _build()
    assert (config.max_rss, config.cpu_affinity, config.nice, config.inner_threads) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        (2**31, 2**31),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("512MB", 512 * 1000**2),
        (" 300 MiB ", 300 * 1024**2),
        (None, None),
    ],
)
def test_max_rss_is_stored_in_bytes(value: object, expected: int | None) -> None:
    assert _build(max_rss=value).max_rss == expected
    assert ExecutorConfig(procs=1, start_method="spawn", max_rss=value).max_rss == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "exc", "text"),
    [
        (0, ValueError, "max_rss must be a positive number of bytes"),
        (-5, ValueError, "max_rss"),
        ("0MiB", ValueError, "max_rss"),
        ("lots", ValueError, "max_rss must be .*cannot parse size 'lots'"),
        ("2G", ValueError, "max_rss .*ambiguous"),
        (1.5e9, TypeError, "max_rss"),
        (True, TypeError, "max_rss"),
        ([1], TypeError, "max_rss"),
    ],
)
def test_bad_max_rss(value: object, exc: type[Exception], text: str) -> None:
    with pytest.raises(exc, match=text) as info:
        _build(max_rss=value)
    assert type(info.value) is exc


# --------------------------------------------------------------------------- retain_bytes


def test_retain_bytes_defaults_to_256_mib() -> None:
    assert DEFAULT_RETAIN_BYTES == 256 * 1024**2
    assert _build().retain_bytes == DEFAULT_RETAIN_BYTES
    assert ExecutorConfig(procs=1, start_method="spawn").retain_bytes == DEFAULT_RETAIN_BYTES


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),  # keeps no value past its task's future
        (1, 1),
        (2**40, 2**40),
        ("512MiB", 512 * 1024**2),
        ("1.5 GB", 1_500_000_000),
        ("0", 0),
        ("0 KiB", 0),
        (None, None),  # no budget
    ],
)
def test_retain_bytes_is_stored_in_bytes(value: object, expected: int | None) -> None:
    assert _build(retain_bytes=value).retain_bytes == expected
    config = ExecutorConfig(procs=1, start_method="spawn", retain_bytes=value)  # type: ignore[arg-type]
    assert config.retain_bytes == expected


@pytest.mark.parametrize(
    ("value", "exc", "text"),
    [
        (-1, ValueError, "retain_bytes must be a number of bytes >= 0"),
        ("lots", ValueError, "retain_bytes must be .*cannot parse size 'lots'"),
        ("1G", ValueError, "retain_bytes .*ambiguous"),
        ("-1MiB", ValueError, "retain_bytes"),
        (1.5, TypeError, "retain_bytes"),
        (False, TypeError, "retain_bytes"),
        ([1], TypeError, "retain_bytes"),
    ],
)
def test_bad_retain_bytes(value: object, exc: type[Exception], text: str) -> None:
    with pytest.raises(exc, match=text) as info:
        _build(retain_bytes=value)
    assert type(info.value) is exc


def test_cpu_affinity_is_normalised() -> None:
    assert _build(cpu_affinity=[0, 1]).cpu_affinity == (frozenset({0}), frozenset({1}))
    assert _build(cpu_affinity=(3,)).cpu_affinity == (frozenset({3}),)
    assert _build(cpu_affinity=range(2)).cpu_affinity == (frozenset({0}), frozenset({1}))
    assert _build(cpu_affinity=[{0, 1}, [2, 3, 3]]).cpu_affinity == (
        frozenset({0, 1}),
        frozenset({2, 3}),
    )
    assert _build(cpu_affinity=[0, {1, 2}]).cpu_affinity == (frozenset({0}), frozenset({1, 2}))
    assert _build(cpu_affinity=None).cpu_affinity is None
    config = _build(cpu_affinity=[0, 1])
    hash(config.cpu_affinity)
    assert pickle.loads(pickle.dumps(config)) == config


@pytest.mark.parametrize(
    ("value", "exc", "text"),
    [
        ([], ValueError, "cpu_affinity must be a sequence"),
        ([-1], ValueError, "cpu_affinity CPU ids must be ints >= 0, got -1"),
        ([[0], set()], ValueError, "cpu_affinity entries must not be empty"),
        ([[0, -2]], ValueError, "cpu_affinity CPU ids"),
        ({0, 1}, TypeError, "cpu_affinity .*a set has no order"),
        (frozenset({0}), TypeError, "cpu_affinity"),
        ({0: 1}, TypeError, "cpu_affinity"),
        ("01", TypeError, "cpu_affinity"),
        (3, TypeError, "cpu_affinity"),
        ([True], TypeError, "cpu_affinity"),
        ([0.5], TypeError, "cpu_affinity"),
        (["0"], TypeError, "cpu_affinity"),
        ([[0, "1"]], TypeError, "cpu_affinity CPU ids"),
    ],
)
def test_bad_cpu_affinity(value: object, exc: type[Exception], text: str) -> None:
    with pytest.raises(exc, match=text) as info:
        _build(cpu_affinity=value)
    assert type(info.value) is exc


def test_cpu_affinity_is_refused_without_sched_setaffinity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr("os.sched_setaffinity", raising=False)
    with pytest.raises(ValueError, match="cpu_affinity is not supported on this platform"):
        _build(cpu_affinity=[0])
    assert _build(cpu_affinity=None).cpu_affinity is None


def test_nice() -> None:
    assert _build(nice=0).nice == 0
    assert _build(nice=19).nice == 19
    assert _build(nice=5).nice == 5
    for bad in (-1, 20, 100):
        with pytest.raises(ValueError, match=f"nice must be an int from 0 to 19, got {bad}"):
            _build(nice=bad)
    for wrong in (1.0, "5", True):
        with pytest.raises(TypeError, match="nice must be an int"):
            _build(nice=wrong)


def test_inner_threads() -> None:
    assert _build(inner_threads=1).inner_threads == 1
    assert _build(inner_threads=64).inner_threads == 64
    assert _build(inner_threads=None).inner_threads is None
    with pytest.raises(ValueError, match="inner_threads must be an int >= 1 or None, got 0"):
        _build(inner_threads=0)
    for wrong in (2.0, "2", False):
        with pytest.raises(TypeError, match="inner_threads"):
            _build(inner_threads=wrong)


def test_inner_threads_default_does_not_ask_for_the_cpu_budget() -> None:
    # the workers' default is worked out when they start; procs given: no budget call here
    def budget() -> int:
        raise AssertionError("cpu_budget called")

    assert build_config(4, {"inner_threads": None}, cpu_budget=budget).inner_threads is None


def test_resource_cap_keywords_suggest_on_typos() -> None:
    with pytest.raises(TypeError, match=r"'max_rs' \(did you mean 'max_rss'\?\)"):
        _build(max_rs="1GiB")
    with pytest.raises(TypeError, match=r"did you mean 'inner_threads'"):
        _build(inner_thread=2)
