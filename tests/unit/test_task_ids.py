"""Task ids (no processes): random uuid4s in hex, as ``uuid.uuid4().hex`` makes them."""

from __future__ import annotations

import uuid

from osiiso_mp._intake import new_task_id


def test_task_ids_are_uuid4_hex() -> None:
    ids = [new_task_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for task_id in ids:
        assert len(task_id) == 32 and task_id == task_id.lower()
        parsed = uuid.UUID(hex=task_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert parsed.hex == task_id
    # leading zero digits are kept (32 digits always): some id among many starts with 0
    assert any(task_id.startswith("0") for task_id in ids)
