"""Worker connections over TCP, for workers we did not fork (a cluster's): a listener that
lets in only a peer that proves it holds this executor's key.

A worker elsewhere connects back to the supervisor; until the hand-shake below has
succeeded, nothing it sends is parsed beyond fixed-size byte strings, so a stranger's bytes
never reach ``pickle.loads``. Both sides prove they hold the key (a fresh challenge each
way, HMAC-SHA256, as ``multiprocessing.connection`` does with its authkey)::

    supervisor -> worker   MAGIC (8 bytes) + challenge (32 random bytes)
    worker -> supervisor   token (16) + its challenge (32)
                           + HMAC(key, MAGIC + challenge + token + its challenge)
    supervisor -> worker   HMAC(key, b"supervisor" + its challenge + challenge)

The token names the worker start the connection is for (one per :meth:`Listener.expect`);
the key is the executor's own (32 random bytes, never sent). A connection that fails the
hand-shake, sends anything else, names no expected token or takes longer than
``HANDSHAKE_TIMEOUT`` is closed and logged. The listener binds only the address it is
given (the one the cluster uses), and closes with its transport.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import socket
import time
from collections.abc import Callable

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "KEY_SIZE",
    "HandshakeError",
    "Listener",
    "connect_to_supervisor",
    "new_key",
]

log = logging.getLogger("osiiso_mp")

MAGIC = b"OSMPTCP1"
KEY_SIZE = 32
TOKEN_SIZE = 16
_CHALLENGE = 32
_DIGEST = 32
_REPLY = TOKEN_SIZE + _CHALLENGE + _DIGEST
HANDSHAKE_TIMEOUT = 10.0  # seconds a connecting peer has to prove itself
MAX_HANDSHAKES = 64  # connections proving themselves at once; more are closed at once


class HandshakeError(ConnectionError):
    """A peer did not prove it holds the executor's key (or the connection ended)."""


def new_key() -> bytes:
    """A fresh executor key."""
    return secrets.token_bytes(KEY_SIZE)


def _worker_proof(key: bytes, challenge: bytes, token: bytes, theirs: bytes) -> bytes:
    return hmac.digest(key, MAGIC + challenge + token + theirs, hashlib.sha256)


def _supervisor_proof(key: bytes, theirs: bytes, challenge: bytes) -> bytes:
    return hmac.digest(key, b"supervisor" + theirs + challenge, hashlib.sha256)


class Listener:
    """Accepts worker connections on ``host`` (port chosen by the system) on ``loop``.

    :meth:`expect` registers a worker start and returns the token it must present; once a
    connection presenting it has proved itself, ``arrived(sock)`` is called on the loop
    with the connected, non-blocking socket (then owned by the caller). Create, use and
    close it on the loop's thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"the key must be {KEY_SIZE} bytes")
        self._loop = loop
        self._key = key
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, 0), family=family, backlog=128)
        self._sock.setblocking(False)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._expected: dict[bytes, Callable[[socket.socket], None]] = {}
        self._handshakes: set[asyncio.Task[None]] = set()
        self._closed = False
        loop.add_reader(self._sock.fileno(), self._accept)

    def expect(self, arrived: Callable[[socket.socket], None]) -> bytes:
        """Register a worker start: the token its connection must present."""
        token = secrets.token_bytes(TOKEN_SIZE)
        self._expected[token] = arrived
        return token

    def forget(self, token: bytes) -> None:
        """That worker will not connect (it died, or was killed): refuse its token."""
        self._expected.pop(token, None)

    def close(self) -> None:
        """Stop listening; drop the connections still proving themselves."""
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        if not loop.is_closed():
            loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._expected.clear()
        pending = tuple(self._handshakes)
        for task in pending:
            task.cancel()
        if pending and not loop.is_running() and not loop.is_closed():
            # (the loop has stopped: let the cancelled hand-shakes end)
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    def _accept(self) -> None:
        """The listening socket is readable: take the connections waiting."""
        loop = self._loop
        while not self._closed:
            try:
                conn, peer = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: go on listening
                log.warning("osiiso_mp: accepting a worker connection failed: %s", exc)
                return
            if len(self._handshakes) >= MAX_HANDSHAKES:
                log.warning("osiiso_mp: refused a connection from %s: too many at once", peer)
                conn.close()
                continue
            task = loop.create_task(self._admit(conn, peer))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _admit(self, conn: socket.socket, peer: object) -> None:
        conn.setblocking(False)
        try:
            token = await asyncio.wait_for(self._handshake(conn), HANDSHAKE_TIMEOUT)
        except asyncio.CancelledError:
            conn.close()
            raise
        except (TimeoutError, OSError) as exc:
            reason = "no hand-shake in time" if isinstance(exc, TimeoutError) else str(exc)
            log.warning("osiiso_mp: refused a worker connection from %s: %s", peer, reason)
            conn.close()
            return
        arrived = self._expected.pop(token)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        arrived(conn)

    async def _handshake(self, conn: socket.socket) -> bytes:
        """Prove each other; the token the peer presented (an expected one)."""
        loop = self._loop
        challenge = secrets.token_bytes(_CHALLENGE)
        await loop.sock_sendall(conn, MAGIC + challenge)
        reply = await _recv_exactly(loop, conn, _REPLY)
        token = reply[:TOKEN_SIZE]
        theirs = reply[TOKEN_SIZE : TOKEN_SIZE + _CHALLENGE]
        proof = reply[TOKEN_SIZE + _CHALLENGE :]
        if not hmac.compare_digest(proof, _worker_proof(self._key, challenge, token, theirs)):
            raise HandshakeError("it did not prove it holds the executor's key")
        if token not in self._expected:
            raise HandshakeError("it named no worker start that is expected")
        await loop.sock_sendall(conn, _supervisor_proof(self._key, theirs, challenge))
        return token


async def _recv_exactly(loop: asyncio.AbstractEventLoop, conn: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = await loop.sock_recv(conn, n - len(got))
        if not chunk:
            raise HandshakeError("the connection ended during the hand-shake")
        got += chunk
    return bytes(got)


def connect_to_supervisor(
    address: tuple[str, int], key: bytes, token: bytes, timeout: float = HANDSHAKE_TIMEOUT
) -> socket.socket:
    """The worker's side: connect to the supervisor's listener at ``address`` and prove
    each other with ``key``, presenting ``token``; the connected socket (blocking).
    Raises :class:`HandshakeError` (or ``OSError``) when the supervisor cannot be reached
    or does not prove it holds the key."""
    deadline = time.monotonic() + timeout
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        head = _recv_blocking(sock, len(MAGIC) + _CHALLENGE)
        if head[: len(MAGIC)] != MAGIC:
            raise HandshakeError("the peer is not an osiiso_mp supervisor")
        challenge = head[len(MAGIC) :]
        ours = secrets.token_bytes(_CHALLENGE)
        sock.sendall(token + ours + _worker_proof(key, challenge, token, ours))
        proof = _recv_blocking(sock, _DIGEST)
        if not hmac.compare_digest(proof, _supervisor_proof(key, ours, challenge)):
            raise HandshakeError("the supervisor did not prove it holds the executor's key")
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except BaseException:
        sock.close()
        raise


def _recv_blocking(sock: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            raise HandshakeError("the connection ended during the hand-shake")
        got += chunk
    return bytes(got)
