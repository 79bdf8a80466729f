"""Length-prefixed frames of a sync session over a libp2p stream, with the limits that bound a hostile peer.

    frame = length:u32 big-endian  type:u8  payload      (length counts the type byte)

A frame over `MAX_FRAME` bytes, an unknown type, a frame that takes longer than `Limits.frame_deadline` to arrive
in full (a peer sending a byte every 25 seconds), or a session that falls below `Limits.min_rate` bytes a second
once `Limits.grace` seconds have passed, cuts the peer off with ProtocolViolation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import trio

from client.p2p import transfer
from client.p2p.errors import P2PError, ProtocolViolation

HELLO, REFUSED, RECONCILE, TRANSFER, FETCHED, WELCOME, BATCHES = 1, 2, 3, 4, 5, 6, 7
KINDS = frozenset((HELLO, REFUSED, RECONCILE, TRANSFER, FETCHED, WELCOME, BATCHES))
MAX_FRAME = transfer.MAX_FRAME + 64
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one session may cost us. The defaults let an honest member move millions of records."""

    frame_deadline: float = 30.0  # seconds for one whole frame to arrive once we wait for it
    grace: float = 60.0  # seconds before the minimum rate applies
    min_rate: float = 2048.0  # bytes a second, both directions together, averaged over the session
    max_need: int = 4_000_000  # ids a peer may make us fetch in one session
    max_bytes: int = 16 << 30  # bytes we accept from a peer in one session
    max_claims: int = 100_000  # batch claims a peer may carry to us in one session (1,600,000 records)
    max_buffered: int = 64 << 20  # bytes of frames read ahead and not handled yet (an honest peer stays far below)


@dataclass
class Counters:
    bytes_sent: int = 0
    bytes_received: int = 0


class Refused(P2PError):
    """The peer refused the session (not a member, no such Datanet, an older protocol)."""


def _broken(exc: Exception) -> Exception:
    """A reset or closed libp2p stream is the peer going away: one ProtocolViolation; anything else as it is."""
    if type(exc).__module__.startswith("libp2p"):
        return ProtocolViolation(f"The stream to the peer broke ({type(exc).__name__}).")
    return exc


class Throttle:
    """Bytes a second sent to one peer, across its sessions ([limits] max_upload_mbps_per_peer): each frame waits
    its turn, with a quarter of a second of credit so small frames are not delayed one by one."""

    BURST = 0.25

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = time.monotonic()

    async def take(self, size: int) -> None:
        now = time.monotonic()
        self._next = max(self._next, now - self.BURST) + size / self.rate
        if self._next - now > 0:
            await trio.sleep(self._next - now)


class FrameStream:
    """Frames over a libp2p stream (anything with async `read(n)`, `write(data)`), within `limits`; what it sends
    waits on `throttle` when one is given."""

    def __init__(
        self, stream: object, counters: Counters, limits: Limits | None = None, throttle: Throttle | None = None
    ) -> None:
        self.throttle = throttle
        self._stream = stream
        self._buffer = bytearray()
        self.counters = counters
        self.limits = limits or Limits()
        self.started = time.monotonic()
        self._inbox: trio.MemoryReceiveChannel[tuple[int, bytes] | Exception] | None = None
        self._buffered = 0

    async def pump(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Read frames ahead, for as long as the caller's nursery lets it run, so that the stream is always drained
        and a side that is writing a large frame never waits on a side that is writing one too (yamux flow
        control). `receive` takes frames from it; a violation reaches the caller at its next `receive`."""
        send, self._inbox = trio.open_memory_channel[tuple[int, bytes] | Exception](float("inf"))
        task_status.started()
        async with send:
            while True:
                try:
                    frame = await self._read_frame(wait_for_first_byte=False)
                except Exception as exc:
                    send.send_nowait(exc)
                    return
                self._buffered += len(frame[1])
                if self._buffered > self.limits.max_buffered:
                    send.send_nowait(
                        ProtocolViolation(f"The peer sent more than {self.limits.max_buffered} bytes nobody asked for.")
                    )
                    return
                send.send_nowait(frame)

    def _check_rate(self) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed > self.limits.grace:
            moved = self.counters.bytes_sent + self.counters.bytes_received
            if moved / elapsed < self.limits.min_rate:
                raise ProtocolViolation(
                    f"The session moved {moved / elapsed:.0f} bytes a second, below the "
                    f"{self.limits.min_rate:.0f} it must keep up."
                )
        if self.counters.bytes_received > self.limits.max_bytes:
            raise ProtocolViolation(f"The peer sent more than {self.limits.max_bytes} bytes in one session.")

    async def _read_some(self, n: int = 1 << 16) -> bytes:
        try:
            chunk = await self._stream.read(n)  # type: ignore[attr-defined]
        except EOFError:
            chunk = b""
        except Exception as exc:
            raise _broken(exc) from None
        if not chunk:
            raise ProtocolViolation("The peer closed the stream in the middle of the session.")
        return bytes(chunk)

    async def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += await self._read_some(max(n - len(self._buffer), 1 << 16))
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        self.counters.bytes_received += n
        return data

    async def _read_frame(self, *, wait_for_first_byte: bool = True) -> tuple[int, bytes]:
        """One frame off the stream. The deadline runs from when we wait for it, or (`wait_for_first_byte` False:
        the pump, which waits all the time) from its first byte."""
        if not wait_for_first_byte and not self._buffer:
            self._buffer += await self._read_some()
        try:
            with trio.fail_after(self.limits.frame_deadline):
                length = int.from_bytes(await self._read_exact(4), "big")
                if length == 0:
                    raise ProtocolViolation("The peer sent an empty frame.")
                if length > MAX_FRAME:
                    raise ProtocolViolation(f"The peer announced a {length}-byte frame, over the {MAX_FRAME} limit.")
                frame = await self._read_exact(length)
        except trio.TooSlowError:
            raise ProtocolViolation(
                f"The peer did not deliver a whole frame within {self.limits.frame_deadline:.0f} s."
            ) from None
        if frame[0] not in KINDS:
            raise ProtocolViolation(f"The peer sent a frame of unknown type {frame[0]}.")
        return frame[0], frame[1:]

    async def receive(self) -> tuple[int, bytes]:
        self._check_rate()
        if self._inbox is None:
            return await self._read_frame()
        try:
            with trio.fail_after(self.limits.frame_deadline):
                item = await self._inbox.receive()
        except trio.TooSlowError:
            raise ProtocolViolation(f"The peer sent nothing for {self.limits.frame_deadline:.0f} s.") from None
        except trio.EndOfChannel:
            raise ProtocolViolation("The peer closed the stream in the middle of the session.") from None
        if isinstance(item, Exception):
            raise item
        self._buffered -= len(item[1])
        return item

    async def expect(self, kind: int) -> bytes:
        got, payload = await self.receive()
        if got == REFUSED and kind != REFUSED:
            raise Refused(f"The peer refused: {payload[:200].decode('utf-8', 'replace')}")
        if got != kind:
            raise ProtocolViolation(f"The peer sent a frame of type {got} where {kind} was expected.")
        return payload

    async def send(self, kind: int, payload: bytes = b"") -> None:
        data = (len(payload) + 1).to_bytes(4, "big") + bytes([kind]) + payload
        if self.throttle is not None:
            await self.throttle.take(len(data))
        try:
            await self._stream.write(data)  # type: ignore[attr-defined]
        except Exception as exc:
            raise _broken(exc) from None
        self.counters.bytes_sent += len(data)


async def close_stream(stream: object) -> None:
    """End a stream politely; a peer already gone is nothing to report (every protocol of ours, at its end)."""
    try:
        await stream.close()  # type: ignore[attr-defined]
    except Exception:  # the peer may be gone already
        logger.debug("closing a stream failed", exc_info=True)


async def reset_stream(stream: object) -> None:
    """End a stream at once (a peer cut off, or a failure on our side)."""
    try:
        await stream.reset()  # type: ignore[attr-defined]
    except Exception:
        logger.debug("resetting a stream failed", exc_info=True)
