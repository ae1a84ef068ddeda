"""What crosses the pipe besides messages: task payloads, values and exceptions.

- A task payload is ``cloudpickle.dumps((fn, args, kwargs))``, made in the submitting thread,
  so lambdas, closures and functions from ``__main__`` or a notebook cell travel by value
  (their code keeping its file name, for the worker's tracebacks: see :mod:`._by_value`).
  When it fails, :func:`dumps_task` says which stage failed (the callable or the arguments).
  ``fn`` may be a :class:`~._by_value.PickledCallable`, pickled once for many payloads.
- Pickling uses protocol 5: the data of large buffers that support it out of band (numpy
  arrays, :class:`pickle.PickleBuffer`) is kept out of the pickle and copied once, as a
  snapshot, into what travels beside it (:func:`._buffers.attach_copy`); the pickle itself is
  attached as it is (:func:`._buffers.attach`). Arguments and values keep copy semantics.
- Values and exceptions go back with plain pickle first (fast) and cloudpickle when plain
  pickle cannot (a class defined in the parent's ``__main__``, for instance: cloudpickle's
  class tracking hands the parent back its own class object).
- An exception that cannot be pickled, or whose pickle cannot be rebuilt in the parent,
  becomes a :class:`~osiiso_mp.RemoteError` with the type name, message and traceback text.
  The remote traceback is attached as ``__cause__`` in every case.

cloudpickle is imported where it is first needed, not with this module: the fork server
preloads this module for every worker, and a worker that only runs importable functions
with plain values never needs it (unpickling a callable sent by value imports it anyway).
"""

from __future__ import annotations

import pickle
import traceback
import types
from collections.abc import Callable
from typing import Any

from ..._errors import RemoteError, SerializationError
from ._buffers import INLINE_MIN, SHARED_PER_FRAME, Blob, SharedBuffer, attach, attach_copy
from ._by_value import PickledCallable, dumps_by_value
from ._messages import ErrorInfo

Packed = tuple[Blob, tuple[Blob, ...]]  # a pickle and its out-of-band buffers, ready to travel

__all__ = [
    "collector",
    "dumps_chunk_values",
    "dumps_task",
    "dumps_value",
    "error_info",
    "rebuild_exception",
    "type_name",
]


def type_name(obj: object) -> str:
    """Qualified type name of ``obj`` (``module.Qualname``, builtins unqualified)."""
    cls = obj if isinstance(obj, type) else type(obj)
    mod = getattr(cls, "__module__", None)
    qual = getattr(cls, "__qualname__", cls.__name__)
    return qual if mod in (None, "builtins") else f"{mod}.{qual}"


def _culprit(exc: BaseException, fallback: object) -> str:
    """Best guess at the type that could not be pickled, from the error text."""
    text = str(exc)
    for marker in ("cannot pickle '", "Can't pickle "):
        if marker in text:
            rest = text.split(marker, 1)[1]
            return rest.split("'", 1)[0].split(":", 1)[0].strip("<> ")
    return type_name(fallback)


def collector(into: list[pickle.PickleBuffer]) -> Callable[[pickle.PickleBuffer], bool]:
    """A ``buffer_callback`` keeping buffers of ``INLINE_MIN`` bytes or more out of band
    (appended to ``into``); the checkpoint's codec stores values with it too."""

    def in_band(buf: pickle.PickleBuffer) -> bool:
        try:
            if buf.raw().nbytes < INLINE_MIN:
                return True
        except BufferError:  # not contiguous: pickle copies it in band
            return True
        into.append(buf)
        return False

    return in_band


def _pack(data: bytes, oob: list[pickle.PickleBuffer], may_share: bool = True) -> Packed:
    """The pickle and its out-of-band buffers as they travel: at most ``SHARED_PER_FRAME``
    of them in shared memory (one descriptor each on the frame; none unless
    ``may_share``), the rest by the socket."""
    blobs = []
    shared = 0 if may_share else SHARED_PER_FRAME
    for buf in oob:
        blob = attach_copy(buf, shared=shared < SHARED_PER_FRAME - 1)
        shared += type(blob) is SharedBuffer
        blobs.append(blob)
    return attach(data, shared=shared < SHARED_PER_FRAME), tuple(blobs)


def dumps_task(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    out_of_band: bool = True,
    shared: bool = True,
) -> Packed:
    """Pickle a task for the wire; raise :class:`SerializationError` naming the stage.

    With ``out_of_band=False`` everything stays in one plain ``bytes`` pickle (returned
    with no buffers), for what must travel in a frame read without a loop (the initializer).
    ``shared=False`` keeps large buffers out of shared memory (a transport whose workers
    are on another host).
    """
    # the commonest call first: a callable known to pickle by reference, small plain
    # arguments; plain pickle makes the payload (what the general path below would make)
    if _BY_REFERENCE.get(id(fn)) is fn and _small_plain_args(args, kwargs):
        try:
            data = pickle.dumps((fn, args, kwargs), protocol=5)
        except Exception:  # not the object its module holds now, say: as below
            pass
        else:
            if len(data) < INLINE_MIN or not out_of_band:
                return data, ()
            return _pack(data, [], shared)
    if type(fn) is PickledCallable:  # pickled already: only the arguments may need cloudpickle
        plain = _plain_args(args, kwargs)
    else:
        plain = _plain_call(fn, args, kwargs)
    if plain:
        try:
            if out_of_band and _has_large_bytes(args, kwargs):
                # pickle would copy them into the pickle first: send them as buffers, copied
                # once, straight into what travels (they unpickle as bytes)
                oob_plain: list[pickle.PickleBuffer] = []
                data = pickle.dumps(
                    (fn, *_large_bytes_out_of_band(args, kwargs)),
                    protocol=5,
                    buffer_callback=collector(oob_plain),
                )
                return _pack(data, oob_plain, shared)
            if out_of_band and type(fn) is PickledCallable:
                oob_fn: list[pickle.PickleBuffer] = []
                data = pickle.dumps(
                    (fn, args, kwargs), protocol=5, buffer_callback=collector(oob_fn)
                )
                return _pack(data, oob_fn, shared)
            data = pickle.dumps((fn, args, kwargs), protocol=5)
        except Exception:  # not the object its module holds now, say: as below
            pass
        else:
            return _pack(data, [], shared) if out_of_band else (data, ())
    oob: list[pickle.PickleBuffer] = []
    try:
        if not out_of_band:
            return dumps_by_value((fn, args, kwargs)), ()
        data = dumps_by_value((fn, args, kwargs), collector(oob))
        return _pack(data, oob, shared)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        try:
            dumps_by_value(fn)
        except BaseException as fn_exc:
            if isinstance(fn_exc, KeyboardInterrupt):
                raise
            raise SerializationError(
                "callable", _culprit(fn_exc, fn), f"{type_name(fn_exc)}: {fn_exc}"
            ) from None
        raise SerializationError(
            "arguments", _culprit(exc, _first_unpicklable(args, kwargs)), f"{type_name(exc)}: {exc}"
        ) from None


# Argument types whose pickle is the same from plain pickle and from cloudpickle, and that
# have no out-of-band buffers.
_PLAIN = frozenset({int, float, str, bytes, bool, type(None)})
# Callables known to pickle by reference (importable, not from __main__), by id; only
# module-level functions and builtins get here, so the strong references leak nothing.
_BY_REFERENCE: dict[int, Any] = {}


def _plain_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Are the arguments all of plain types (see ``_PLAIN``)?"""
    plain = _PLAIN
    for arg in args:
        if type(arg) not in plain:
            return False
    for arg in kwargs.values():  # noqa: SIM110 - loops: faster than all() (a hot path)
        if type(arg) not in plain:
            return False
    return True


def _small_plain_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Are the arguments all of plain types (see ``_PLAIN``), and none large bytes (which
    travel out of band)?"""
    plain = _PLAIN
    for arg in args:
        kind = type(arg)
        if kind not in plain or (kind is bytes and len(arg) >= INLINE_MIN):
            return False
    if kwargs:
        for arg in kwargs.values():
            kind = type(arg)
            if kind not in plain or (kind is bytes and len(arg) >= INLINE_MIN):
                return False
    return True


def _plain_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Can plain pickle (C, several times faster) make exactly the payload cloudpickle
    would? Yes for a callable pickled by reference with arguments of plain types."""
    if not _plain_args(args, kwargs):
        return False
    if _BY_REFERENCE.get(id(fn)) is fn:
        return True
    kind = type(fn)
    from cloudpickle.cloudpickle import _should_pickle_by_reference

    try:
        by_reference = kind is types.BuiltinFunctionType or (
            kind is types.FunctionType and _should_pickle_by_reference(fn)
        )
    except Exception:
        return False
    if by_reference and len(_BY_REFERENCE) < 1024:
        _BY_REFERENCE[id(fn)] = fn
    return by_reference


def _first_unpicklable(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    """The first argument that does not pickle on its own (or the args tuple)."""
    import cloudpickle

    for arg in (*args, *kwargs.values()):
        try:
            cloudpickle.dumps(arg, protocol=5)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            return arg
    return args


def dumps_value(value: Any, *, shared: bool = True) -> Packed:
    """Pickle a task's return value; :class:`SerializationError` (stage "result") on failure.
    ``shared=False`` keeps its large buffers out of shared memory (as for ``dumps_task``).

    Runs in the worker. Catches BaseException: a ``__reduce__`` calling ``sys.exit`` must
    fail the task, not end the worker (workers ignore SIGINT, so nothing else is lost).
    """
    oob: list[pickle.PickleBuffer] = []
    value = _bytes_out_of_band(value)
    try:
        return _pack(pickle.dumps(value, protocol=5, buffer_callback=collector(oob)), oob, shared)
    except BaseException:  # fall back to pickling by value
        oob.clear()
    try:
        import cloudpickle

        data = cloudpickle.dumps(value, protocol=5, buffer_callback=collector(oob))
        return _pack(data, oob, shared)
    except BaseException as exc:
        raise SerializationError(
            "result", _culprit(exc, value), f"{type_name(exc)}: {exc}"
        ) from None


def dumps_chunk_values(
    values: list[Any], errors: dict[int, ErrorInfo], *, shared: bool = True
) -> Packed:
    """Pickle a chunk's outcomes, ``(values, errors)``, for :class:`ChunkFinished`.

    A value that cannot be pickled fails only its own item: it is replaced by None and its
    index gets a :class:`SerializationError` (stage "result") in ``errors``.
    """
    try:
        return dumps_value((values, errors), shared=shared)
    except SerializationError:
        pass
    for i, value in enumerate(values):
        if i in errors:
            continue
        try:
            dumps_value(value, shared=shared)
        except SerializationError as exc:
            errors[i] = error_info(exc)
            values[i] = None
    return dumps_value((values, errors), shared=shared)


def _is_large_bytes(obj: Any) -> bool:
    """Is ``obj`` ``bytes`` of ``INLINE_MIN`` bytes or more? pickle copies such bytes into
    the pickle (one copy more than a buffer beside it costs)."""
    return type(obj) is bytes and len(obj) >= INLINE_MIN


def _bytes_out_of_band(obj: Any) -> Any:
    """``obj``, wrapped to pickle as an out-of-band buffer when it is large bytes."""
    return _LargeBytes(obj) if _is_large_bytes(obj) else obj


def _has_large_bytes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Is one of the arguments large bytes?"""
    return any(map(_is_large_bytes, args)) or any(map(_is_large_bytes, kwargs.values()))


def _large_bytes_out_of_band(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args`` and ``kwargs`` with each large ``bytes`` wrapped to pickle out of band."""
    return tuple(map(_bytes_out_of_band, args)), {
        k: _bytes_out_of_band(v) for k, v in kwargs.items()
    }


class _LargeBytes:
    """A large ``bytes`` value, pickled as an out-of-band buffer that unpickles as bytes."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return bytes, (pickle.PickleBuffer(self.data),)


def error_info(exc: BaseException) -> ErrorInfo:
    """Package a task's exception for the trip back to the parent."""
    tb = "".join(traceback.format_exception(exc))
    try:
        message = str(exc)
    except BaseException:
        message = f"<unprintable {type(exc).__name__}>"
    pickled: bytes | None
    try:  # BaseException, as in dumps_value: a misbehaving __reduce__ must not end the worker
        pickled = pickle.dumps(exc, protocol=5)
    except BaseException:
        try:
            import cloudpickle

            pickled = cloudpickle.dumps(exc, protocol=5)
        except BaseException:
            pickled = None
    return ErrorInfo(type_name(exc), message, tb, pickled)


def rebuild_exception(info: ErrorInfo) -> BaseException:
    """The task's exception in the parent: the original type when possible, else RemoteError.

    The remote traceback text is attached as ``__cause__`` either way, completed with the
    source lines the worker could not read and the parent has (see :mod:`osiiso_mp._remote_tb`).
    """
    from ..._pool_errors import RemoteTraceback  # parent side only: workers never load it
    from ..._remote_tb import fill_source

    text = fill_source(info.traceback)
    exc: BaseException
    if info.pickled is not None:
        try:
            rebuilt = pickle.loads(info.pickled)
        except Exception:
            rebuilt = None
        exc = (
            rebuilt
            if isinstance(rebuilt, BaseException)
            else RemoteError(info.type_name, info.message, text)
        )
    else:
        exc = RemoteError(info.type_name, info.message, text)
    exc.__cause__ = RemoteTraceback(text)
    return exc
