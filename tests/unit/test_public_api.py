"""The public names: each resolves and has a docstring (what importing them loads, in a fresh
interpreter, is in tests/integration/test_public_api_processes.py)."""

from __future__ import annotations

import osiiso_mp


def test_every_public_name_resolves_with_a_docstring() -> None:
    for name in osiiso_mp.__all__:
        value = getattr(osiiso_mp, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"
    assert set(dir(osiiso_mp)) >= set(osiiso_mp.__all__)


def test_unknown_names_raise_attribute_error() -> None:
    try:
        osiiso_mp.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_only_local_executors_start_the_fork_server_early() -> None:
    # a cluster's name or a transport object: nothing to launch here (the unit tests'
    # audit hook fails any test that starts a process)
    from osiiso_mp._runtime.transports._forkserver import ForkServer, start_early

    before = ForkServer._instance
    start_early("ray")
    start_early(object())
    assert ForkServer._instance is before
