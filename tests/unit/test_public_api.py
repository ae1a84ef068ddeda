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
