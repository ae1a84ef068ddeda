"""Progress reporting for ``run(progress=...)``, ``map(progress=...)`` and ``pmap(progress=...)``.

``progress`` takes one of:

* ``True`` -- a progress bar: tqdm's ``tqdm.auto.tqdm`` (a notebook widget or a console bar)
  when tqdm is installed (``pip install osiiso_mp[progress]``), else a plain text line on
  ``sys.stderr``, redrawn in place with ``\\r``::

      osiiso_mp run: |#######             | 37/100 done (35 ok, 2 failed, 0 cancelled) 1.2s

* a callable -- called with a :class:`ProgressEvent` once per finished task and once more,
  with ``final=True``, when the tracking ends. If it raises, the error is logged on the
  ``osiiso_mp`` logger and otherwise ignored: a progress callback never breaks a run.
* ``False`` / ``None`` -- no progress reporting.

Anything else raises ``TypeError``.

The package's parts: :mod:`._events` (:class:`ProgressEvent`, what ``progress=`` accepts,
:func:`sized_total`), :mod:`._tracker` (:class:`ProgressTracker`, which counts finished
futures, and :func:`progress_tracker`, which makes one), :mod:`._bars` (the tqdm and text
bars of ``progress=True``) and :mod:`._callback` (the delivery of events to a callable).
"""

from ._events import ProgressArg, ProgressCallback, ProgressEvent, sized_total
from ._tracker import ProgressTracker, progress_tracker

__all__ = [
    "ProgressArg",
    "ProgressCallback",
    "ProgressEvent",
    "ProgressTracker",
    "progress_tracker",
    "sized_total",
]
