"""Unit tests: no worker process, no process at all (``conftest.py`` checks it).

A package, so that its ``conftest`` and the top-level one are two modules to mypy.
"""
