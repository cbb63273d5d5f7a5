"""Signing in the transfer engine: the steps a transfer takes to sign a request (``rules.py``)
and where a driver carries out a :class:`~mlhub_sync.transfer.ops.Sign` (:class:`Signing`).

Where the signer's I/O happens, and why there: a transfer asks the signer's
:meth:`~mlhub_sync.net.signing.Signer.cached` inline before every GET/HEAD attempt (no I/O: a
dict lookup, so 20k small files cost nothing extra); only when that has nothing usable (no
token yet, one about to expire) or the host refused the signature (401/403) does it yield a
``Sign`` operation, which the libcurl driver runs on a helper thread and answers when done,
while every other transfer of the multi handle goes on. Why not sign in the runner before a
batch: a token can expire during a long transfer or its retries, and a 403 is seen only by
the transfer. Why not a signer thread filling a cache: a transfer would have to poll it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from mlhub_sync.net.signing import Signed, Signer
from mlhub_sync.transfer.ops import Failure, Get, Head, Response, Sign, Steps

SIGN_THREADS = 4  # helper threads per driver for signers' I/O (requests never overlap anyway)


SIGN_POLL_SECONDS = 0.005  # how often a driver with signatures in flight looks for them


REFUSED = frozenset({401, 403})  # statuses that make a transfer renew its signature once


def send(
    signer: Signer | None, href: str, headers: dict[str, str], *, head: bool = False
) -> Steps[tuple[Signed, Response | Failure]]:
    """Sign a request for ``href`` and send it: ``(what was sent, the reply)``. The cached
    signature if there is one, else one the driver fetched (a signer that fails is a failed
    attempt). A response from the signed URL itself says ``href`` as its URL, so a token
    never reaches a result."""
    sent = Signed(href)
    if signer is not None:
        method = "HEAD" if head else "GET"
        found = signer.cached(href, method)
        if found is None:
            answer = yield Sign(signer, href, method=method)
            if isinstance(answer, Failure):
                return sent, answer
            found = _signed(answer)
        sent = found
    op = Head if head else Get
    reply = yield op(sent.url, headers, sent.headers or None)
    if isinstance(reply, Response) and sent.url != href and reply.url == sent.url:
        reply = Response(reply.status, reply.headers, href)
    return sent, reply


def refused(status: int, sent: Signed, href: str) -> bool:
    """Whether a response is a refusal of a signature (a 401/403 to a request that carried
    one), which the transfer renews once."""
    return status in REFUSED and (sent.url != href or bool(sent.headers))


def renewed(
    signer: Signer | None, href: str, refused: Signed, *, head: bool = False
) -> Steps[None]:
    """Renew the signature the host refused (the next :func:`send` sends the new one); a
    signer that fails raises its error (the refusal was final anyway)."""
    if signer is not None:
        answer = yield Sign(signer, href, refused, "HEAD" if head else "GET")
        if isinstance(answer, Failure):
            raise answer.error
        _signed(answer)


def _signed(answer: object) -> Signed:
    if isinstance(answer, BaseException):  # a signer's bug, raised in the helper thread
        raise answer
    assert isinstance(answer, Signed), answer
    return answer


class Signing:
    """A driver's helper threads for :class:`Sign` operations: :meth:`submit`, then
    :meth:`collect` the answers (for the tasks not cancelled meanwhile).

    Daemon threads, not a ``ThreadPoolExecutor`` (whose threads the interpreter joins at
    exit): a token request waiting out a long ``Retry-After`` must not hold up the exit of a
    run that was stopped."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Any, Sign] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._waiting: set[Any] = set()
        self._threads = 0

    @property
    def pending(self) -> int:
        """Tasks waiting for a signature."""
        return len(self._waiting)

    def waiting(self) -> list[Any]:
        """The tasks waiting (a stopping run cancels them)."""
        return list(self._waiting)

    def submit(self, owner: Any, op: Sign) -> None:
        """Carry ``op`` out in a helper thread; :meth:`collect` hands ``owner`` the answer."""
        self._waiting.add(owner)
        self._jobs.put((owner, op))
        if self._threads < min(SIGN_THREADS, len(self._waiting)):
            self._threads += 1
            threading.Thread(target=self._work, name="mlhub-sync-sign", daemon=True).start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            owner, op = job
            try:
                self._done.put((owner, op()))
            except BaseException as exc:  # a bug in a signer: the task raises it (fatal)
                self._done.put((owner, exc))

    def forget(self, owner: Any) -> None:
        """``owner`` no longer waits (cancelled): its answer will be dropped."""
        self._waiting.discard(owner)

    def collect(self) -> Iterator[tuple[Any, Any]]:
        """The answers that arrived, for the owners still waiting."""
        while True:
            try:
                owner, value = self._done.get_nowait()
            except queue.Empty:
                return
            if owner in self._waiting:
                self._waiting.discard(owner)
                yield owner, value

    def close(self) -> None:
        """End the helpers once they are idle (a request in flight is not waited for)."""
        for _ in range(self._threads):
            self._jobs.put(None)
        self._threads = 0
