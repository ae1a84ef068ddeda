"""The Ray tests use the session's shared local Ray (``ray_session`` and the ``transport``
fixture, in tests/conftest.py), as a cluster's users share one."""
