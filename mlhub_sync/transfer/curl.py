"""The production driver: many transfers at once on one libcurl multi handle, in one thread.

A task is a generator of operations (``ops.py``). Each holds one easy handle while it lives;
the handles share libcurl's connection cache, so connections stay alive across tasks. libcurl
moves the bytes without the GIL and no thread waits on another: at thousands of small files a
second this is several times cheaper than one blocking transfer per thread.

How a GET runs without deciding anything inside a libcurl callback: header lines go straight
into a list (``HEADERFUNCTION`` is ``list.append``: no Python frame per line); the first body
block pauses the transfer (``WRITEFUNC_PAUSE``). After ``perform`` returns, the driver sends the
task a :class:`Response`; the task answers :class:`Receive` (a sink) or :data:`DROP`; the
driver unpauses into the sink (libcurl hands the held block over at once) or removes the
handle. The write callback then only calls :meth:`Sink.write`. A response without a body
completes without pausing, and is handed over the same way. The one judgement made inside a
callback is the redirect guard (``easy.py``): a redirect hop must be judged before its request
goes out, and only libcurl knows when that is.

A signature that needs I/O (:class:`Sign`: a token request) is fetched on a helper thread
(``signing.py``); the task waits for it while the others go on.

fsync (:class:`Sync`) runs in the driver thread while it is cheap (tmpfs, a fast SSD:
microseconds); once measured slow, it moves to helper threads so one slow disk does not stall
every transfer of the driver (:class:`_Fsync`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pycurl

from mlhub_sync.net.settings import DEFAULT_NET, NetSettings
from mlhub_sync.transfer.easy import ENDED, PAUSED, STREAMING, Conn
from mlhub_sync.transfer.fsync import SLOW_SYNC_SECONDS, SYNC_POLL_SECONDS, Fsync
from mlhub_sync.transfer.ops import (
    BodyEnd,
    BodySink,
    Drop,
    Failure,
    Get,
    Head,
    Receive,
    Sign,
    Sleep,
    Steps,
    Sync,
)
from mlhub_sync.transfer.signing import SIGN_POLL_SECONDS, Signing

T = TypeVar("T")

log = logging.getLogger("mlhub_sync.transfer")


class Cancelled(Exception):  # noqa: N818 - how a stopped task ended, not an error
    """The run is stopping; the ``.part`` file stays for the next run to resume.

    A driver reports it to ``on_exit`` as a value; :meth:`CurlDriver.run` raises it.
    """


TaskExit = Callable[[Any, BaseException | None], None]  # (returned value, what escaped)


@dataclass(eq=False)
class _Task:
    steps: Steps[Any]
    conn: Conn
    on_exit: TaskExit


class CurlDriver:
    """Runs up to ``slots`` tasks at once on one libcurl multi handle (see the module doc).

    ``submit`` a task when :attr:`free`; call :meth:`poll` while :attr:`active`. Each task's
    end is reported to its ``on_exit`` as ``(returned value, None)``, ``(None, exception)`` or,
    when the run stops (``stop`` set), ``(None, Cancelled())``.
    """

    def __init__(
        self,
        slots: int,
        *,
        stop: Any,
        net: NetSettings = DEFAULT_NET,
        inline_sync_below: float = SLOW_SYNC_SECONDS,
    ):
        self.stop = stop
        self.multi = pycurl.CurlMulti()
        self._paused: list[Conn] = []
        self._idle = [Conn(self._paused, net) for _ in range(max(1, slots))]
        self._waiting: dict[int, Conn] = {}  # by id(easy handle)
        self._sleeping: list[tuple[float, int, _Task]] = []
        self._order = itertools.count()
        self.fsync = Fsync(inline_sync_below)
        self.signing = Signing()
        self.active = 0
        self._body_bytes = 0  # bytes of bodies no longer streaming (see received)

    @property
    def free(self) -> int:
        """How many more tasks fit."""
        return len(self._idle)

    def received(self) -> int:
        """Body bytes received so far by every task, the bodies still streaming included:
        for progress, read now and then (a sum over the handles in flight), never per block."""
        streaming = sum(
            c.sink.received
            for c in self._waiting.values()
            if c.phase == STREAMING and c.sink is not None
        )
        return self._body_bytes + streaming

    def submit(self, steps: Steps[Any], on_exit: TaskExit) -> None:
        """Start a task (there must be a free slot)."""
        conn = self._idle.pop()
        task = _Task(steps, conn, on_exit)
        conn.task = task
        self.active += 1
        self._advance(task, None)

    def run(self, steps: Steps[T]) -> T:
        """Run one task to its end (the calling thread drives): its value, or raise what
        escaped it (:class:`Cancelled` when the run stopped)."""
        ended: list[tuple[Any, BaseException | None]] = []
        self.submit(steps, lambda value, error: ended.append((value, error)))
        while not ended:
            self.poll(0.2)
        value, error = ended[0]
        if error is not None:
            raise error
        return value  # type: ignore[no-any-return]

    def poll(self, timeout: float) -> None:
        """Move every task on; wait up to ``timeout`` seconds for the network first."""
        if self.stop.is_set():
            self.cancel_all()
            return
        wait = timeout
        libcurl_wants = self.multi.timeout()  # ms until libcurl has timers to run; -1: none
        if libcurl_wants >= 0:
            wait = min(wait, libcurl_wants / 1000)
        if self._sleeping:
            wait = max(0.0, min(wait, self._sleeping[0][0] - time.monotonic()))
        if self.fsync.pending:
            wait = min(wait, SYNC_POLL_SECONDS)
        if self.signing.pending:
            wait = min(wait, SIGN_POLL_SECONDS)
        if self._waiting:
            self.multi.select(wait)
        elif wait > 0:
            self.stop.wait(wait)
        self._perform()
        self._hand_over()  # unpaused handles go on in the next perform (libcurl's timer is 0)
        now = time.monotonic()
        while self._sleeping and self._sleeping[0][0] <= now:
            _, _, task = heapq.heappop(self._sleeping)
            self._advance(task, None)
        for task, error in self.fsync.collect(block=False):
            self._advance(task, error)
        for task, signed in self.signing.collect():
            self._advance(task, signed)

    def _hand_over(self) -> None:
        """Tell each task whose headers are in what they are; it says where the body goes."""
        paused = self._paused
        while paused:
            conn = paused.pop()
            if conn.task is not None and conn.phase == PAUSED:
                self._advance(conn.task, conn.response())

    def _perform(self) -> None:
        multi = self.multi
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, done, failed = multi.info_read()
            for curl in done:
                self._completed(curl, None)
            for curl, code, message in failed:
                self._completed(curl, (code, message))
            if not queued:
                break

    def cancel_all(self) -> None:
        """The run stops: every task ends as :class:`Cancelled` (its ``.part`` stays).

        A file being synced has been verified: it finishes (renamed into place) first."""
        while self._waiting or self._sleeping or self.fsync.pending or self.signing.pending:
            for task, error in self.fsync.collect(block=True):
                self._advance(task, error)
            for conn in list(self._waiting.values()):
                self._release(conn)
                if conn.task is not None:
                    self._cancel(conn.task)
            while self._sleeping:
                _, _, task = heapq.heappop(self._sleeping)
                self._cancel(task)
            for task in self.signing.waiting():  # its signature is not waited for
                self.signing.forget(task)
                self._cancel(task)

    def close(self) -> None:
        """Cancel what is left and free every handle."""
        self.cancel_all()
        self.fsync.close()
        self.signing.close()
        for conn in self._idle:
            conn.curl.close()
        self._idle.clear()
        self.multi.close()

    # -- internals ------------------------------------------------------------------------------

    def _completed(self, curl: Any, error: tuple[int, str] | None) -> None:
        conn = self._waiting[id(curl)]
        if error is not None and conn.task is not None and conn.without_credentials():
            self.multi.remove_handle(curl)  # a hop to another host: sent without credentials
            self.multi.add_handle(curl)
            return
        task = conn.task
        self._release(conn)
        if task is None:
            return
        failure = None if error is None else conn.error(*error)
        if conn.head:
            conn.after_head()
            self._advance(task, Failure(failure) if failure else conn.response())
        elif conn.phase == STREAMING:
            assert conn.sink is not None
            self._advance(task, BodyEnd(conn.sink.received, failure))
        elif failure is not None:
            self._advance(task, Failure(failure))
        else:  # a response without a body: the task still says where the body goes
            conn.phase = ENDED
            self._advance(task, conn.response())

    def _release(self, conn: Conn) -> None:
        if self._waiting.pop(id(conn.curl), None) is not None:
            self.multi.remove_handle(conn.curl)
            if conn.phase == STREAMING and conn.sink is not None:  # its bytes stay counted
                self._body_bytes += conn.sink.received

    def _advance(self, task: _Task, value: Any) -> None:
        """Send the task its last operation's result; start its next operation."""
        conn = task.conn
        while True:
            try:
                op = task.steps.send(value)
            except StopIteration as done:
                self._end(task, done.value, None)
                return
            except BaseException as exc:  # handed to on_exit
                self._end(task, None, exc)
                return
            kind = type(op)
            if conn.phase == PAUSED and kind is not Receive:
                self._release(conn)  # a body nobody wants: abandon it (and its connection)
                conn.phase = ENDED
            if (
                kind is Get or kind is Head or kind is Sleep or kind is Sign
            ) and self.stop.is_set():
                self._cancel(task)  # nothing new starts once the run stops
                return
            if kind is Get or kind is Head:
                conn.start(op.url, op.headers, kind is Head, op.credentials)  # type: ignore[union-attr]
                self.multi.add_handle(conn.curl)
                self._waiting[id(conn.curl)] = conn
                return
            if kind is Receive:
                value = self._receive(conn, op.sink)  # type: ignore[union-attr]
                if value is None:
                    return  # streaming: _completed goes on
                continue
            if kind is Sync:
                value = self.fsync.here(op.fd)  # type: ignore[union-attr]
                if value is False:
                    self.fsync.submit(task, op.fd)  # type: ignore[union-attr]
                    return
                continue
            if kind is Sleep:
                wake = time.monotonic() + op.seconds  # type: ignore[union-attr]
                heapq.heappush(self._sleeping, (wake, next(self._order), task))
                return
            if kind is Sign:
                self.signing.submit(task, op)  # type: ignore[arg-type]
                return
            assert kind is Drop, op
            value = None

    def _receive(self, conn: Conn, sink: BodySink) -> BodyEnd | None:
        """Unpause into ``sink``; a :class:`BodyEnd` if the body is already over."""
        if conn.phase != PAUSED:  # the response had no body
            return BodyEnd(0, None)
        conn.sink = sink
        conn.phase = STREAMING
        try:
            conn.curl.pause(pycurl.PAUSE_CONT)  # hands the held block to the sink now
        except pycurl.error as exc:
            self._release(conn)
            code = exc.args[0] if exc.args else 0
            message = exc.args[1] if len(exc.args) > 1 else str(exc)
            return BodyEnd(sink.received, conn.error(int(code), str(message)))
        return None

    def _cancel(self, task: _Task) -> None:
        try:
            task.steps.close()  # GeneratorExit at its yield: its finally blocks clean up
        except BaseException as exc:  # handed to on_exit
            self._end(task, None, exc)
            return
        self._end(task, None, Cancelled())

    def _end(self, task: _Task, value: Any, error: BaseException | None) -> None:
        conn = task.conn
        self._release(conn)
        conn.task, conn.sink, conn.phase = None, None, ENDED
        if conn.head:
            conn.after_head()
        self._idle.append(conn)
        self.active -= 1
        task.on_exit(value, error)
