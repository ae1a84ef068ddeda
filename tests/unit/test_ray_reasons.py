"""What the crash record says of a worker actor's end, read from Ray's own exceptions.

Ray gives no exit code or cause as a field (``ActorDiedError`` folds its context into the
message), so the link reads them from the text: these cases build Ray's exceptions as Ray
builds them, so that a Ray release that words them otherwise fails here, not in a
user's records. Whatever the text, the reason is one line and the code ``None`` when
none is found.
"""

from __future__ import annotations

import pytest
from ray.core.generated.common_pb2 import ActorDiedErrorContext  # type: ignore[attr-defined]
from ray.exceptions import ActorDiedError, ActorUnavailableError

from osiiso_mp._runtime.transports._ray_link import _exit_code, _reason


def _died(message: str) -> ActorDiedError:
    context = ActorDiedErrorContext(
        class_name="WorkerHost",
        actor_id=b"\x01" * 16,
        pid=4321,
        node_ip_address="10.0.0.7",
        error_message=message,
    )
    return ActorDiedError(context)


def test_the_detail_of_a_dead_worker_process_is_the_reason() -> None:
    exc = _died(
        "The actor is dead because its worker process has died. Worker exit type: "
        "SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection "
        "error code 2. End of file. Some common causes include: (1) the process was "
        "killed by the OOM killer"
    )
    reason = _reason(exc)
    assert reason == (
        "Ray: ActorDiedError: Worker unexpectedly exits with a connection error code 2."
        " End of file."
    )
    assert _exit_code(reason) is None  # a connection's error code is not an exit code


def test_an_exit_code_ray_reports_is_kept() -> None:
    exc = _died(
        "The actor is dead because its worker process has died. Worker exit type: "
        "SYSTEM_ERROR Worker exit detail: Worker exits with an exit code 3."
    )
    reason = _reason(exc)
    assert reason == "Ray: ActorDiedError: Worker exits with an exit code 3."
    assert _exit_code(reason) == 3


def test_a_lost_node_says_the_attempt_may_have_run() -> None:
    reason = _reason(ActorUnavailableError("the node was lost", b"\x02" * 16))
    assert reason.startswith("Ray: ActorUnavailableError: The actor 0202")
    assert "may or may not have been executed" in reason and "\n" not in reason
    assert _exit_code(reason) is None


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_died(""), "Ray: ActorDiedError: The actor died unexpectedly before finishing this task."),
        (
            ActorDiedError(),
            "Ray: ActorDiedError: The actor died unexpectedly before finishing this task.",
        ),
        (RuntimeError("first line\nsecond line"), "Ray: RuntimeError: first line"),
        (RuntimeError(""), "Ray: RuntimeError"),
    ],
)
def test_text_in_another_shape_still_gives_one_line_and_no_code(
    exc: BaseException, expected: str
) -> None:
    reason = _reason(exc)
    assert reason == expected
    assert _exit_code(reason) is None
