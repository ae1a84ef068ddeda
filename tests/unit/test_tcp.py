"""The TCP data plane's door: only a peer proving it holds the executor's key gets in, and
nothing a stranger sends is unpickled. Real sockets on localhost; no process."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from osiiso_mp._runtime.protocol._framing import encode, read_frame_blocking
from osiiso_mp._runtime.protocol._messages import Stop, WorkerReady
from osiiso_mp._runtime.transports import _tcp
from osiiso_mp._runtime.transports._tcp import (
    MAGIC,
    HandshakeError,
    Listener,
    connect_to_supervisor,
    new_key,
)


def _run(body: Callable[[asyncio.AbstractEventLoop], Any]) -> Any:
    async def main() -> Any:
        return await body(asyncio.get_running_loop())

    return asyncio.run(main())


async def _eof(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    """What ``sock`` reads until the other end closes it (in a thread: it blocks)."""

    def read() -> bytes:
        got = b""
        sock.settimeout(5)
        while True:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:  # closed with our bytes unread: a reset
                return got
            if not chunk:
                return got
            got += chunk

    return await loop.run_in_executor(None, read)


@pytest.mark.timeout(30)
def test_a_worker_with_the_key_and_an_expected_token_gets_in_and_frames_flow() -> None:
    key = new_key()

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        listener = Listener(loop, "127.0.0.1", key)
        arrived: asyncio.Future[socket.socket] = loop.create_future()
        token = listener.expect(arrived.set_result)
        worker = await loop.run_in_executor(
            None, connect_to_supervisor, listener.address, key, token
        )
        ours = await asyncio.wait_for(arrived, 5)
        try:
            ours.setblocking(True)
            worker.sendall(encode(WorkerReady(42)))
            assert read_frame_blocking(ours) == WorkerReady(42)
            ours.sendall(encode(Stop()))
            assert read_frame_blocking(worker) == Stop()
            # the token was for one connection: presenting it again is refused
            with pytest.raises((HandshakeError, OSError)):
                await loop.run_in_executor(
                    None, connect_to_supervisor, listener.address, key, token
                )
        finally:
            worker.close()
            ours.close()
            listener.close()

    _run(body)


@pytest.mark.timeout(30)
def test_a_peer_without_the_key_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        listener = Listener(loop, "127.0.0.1", new_key())
        called: list[socket.socket] = []
        token = listener.expect(called.append)
        try:
            with pytest.raises((HandshakeError, OSError)):
                await loop.run_in_executor(
                    None, connect_to_supervisor, listener.address, new_key(), token
                )
            await asyncio.sleep(0.05)
        finally:
            listener.close()
        assert called == []

    with caplog.at_level(logging.WARNING, logger="osiiso_mp"):
        _run(body)
    assert "refused a worker connection" in caplog.text
    assert "did not prove it holds the executor's key" in caplog.text


class _Planted:
    """Unpickling this makes a directory: proof that someone unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("what", ["frame", "pickle", "garbage", "magic echoed"])
def test_what_a_stranger_sends_is_never_unpickled_and_the_listener_goes_on(
    what: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    planted = tmp_path / "unpickled"
    evil = pickle.dumps(_Planted(str(planted)))
    payload = {
        "frame": encode(WorkerReady(1))[:8] + evil + b"\0" * 80,  # a frame header first
        "pickle": evil + b"\0" * 80,
        "garbage": os.urandom(200),
        "magic echoed": MAGIC + b"\0" * 200,
    }[what]
    key = new_key()

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        listener = Listener(loop, "127.0.0.1", key)
        arrived: asyncio.Future[socket.socket] = loop.create_future()
        token = listener.expect(arrived.set_result)
        try:
            stranger = socket.create_connection(listener.address)
            with stranger:
                stranger.sendall(payload)
                got = await _eof(loop, stranger)
            # at most the challenge, and then the door closed: no answer, no frame
            assert len(got) <= len(MAGIC) + 32 and MAGIC.startswith(got[: len(MAGIC)])
            # and the real worker still gets in
            worker = await loop.run_in_executor(
                None, connect_to_supervisor, listener.address, key, token
            )
            worker.close()
            (await asyncio.wait_for(arrived, 5)).close()
        finally:
            listener.close()

    with caplog.at_level(logging.WARNING, logger="osiiso_mp"):
        _run(body)
    assert not planted.exists()
    assert "refused a worker connection" in caplog.text


@pytest.mark.timeout(30)
def test_a_peer_that_never_answers_is_dropped_after_the_hand_shake_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_tcp, "HANDSHAKE_TIMEOUT", 0.2)

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        listener = Listener(loop, "127.0.0.1", new_key())
        try:
            silent = socket.create_connection(listener.address)
            with silent:
                got = await _eof(loop, silent)
            assert len(got) == len(MAGIC) + 32
        finally:
            listener.close()

    with caplog.at_level(logging.WARNING, logger="osiiso_mp"):
        _run(body)
    assert "no hand-shake in time" in caplog.text


@pytest.mark.timeout(30)
def test_a_closed_listener_takes_no_connection_and_a_forgotten_token_is_refused() -> None:
    key = new_key()

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        listener = Listener(loop, "127.0.0.1", key)
        token = listener.expect(lambda sock: sock.close())
        listener.forget(token)
        with pytest.raises((HandshakeError, OSError)):
            await loop.run_in_executor(None, connect_to_supervisor, listener.address, key, token)
        address = listener.address
        listener.close()
        await asyncio.sleep(0)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=2).close()

    _run(body)


def test_the_worker_side_refuses_a_supervisor_without_the_key() -> None:
    # a listener that is not ours: it sends the magic and a challenge, then a wrong proof
    server = socket.create_server(("127.0.0.1", 0))
    with server:

        def impostor() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(MAGIC + b"c" * 32)
                conn.recv(100)
                conn.sendall(b"p" * 32)

        import threading

        thread = threading.Thread(target=impostor)
        thread.start()
        try:
            with pytest.raises(HandshakeError, match="did not prove"):
                connect_to_supervisor(server.getsockname()[:2], new_key(), b"t" * 16, 5)
        finally:
            thread.join(5)
