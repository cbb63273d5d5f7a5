"""One file's transfer, as sequential code: a generator of the operations it needs (``ops.py``).

The rules (DESIGN.md §2.3), each written once, here:

1. Ask for ``Accept-Encoding: identity`` so the hash covers the bytes as stored; send
   ``x-ms-version`` to Azure blob hosts (old versions answer a range request with 200).
2. Resume an existing ``.part`` with ``Range: bytes=N-`` and ``If-Range: <validator>`` (the
   ETag or Last-Modified recorded when the part was started); without a usable validator (none,
   or a weak ``W/`` ETag) start from zero, since a resume could splice two versions.
3. A 200 to a range request starts over (free: the server chose to). A 206 starting at another
   byte discards the part (a failed attempt); one whose ETag differs from the validator means
   the file changed: discard the part, free.
4. A 416 to a range request: when the server's size is exactly the part's and the ETag equals
   the validator (or a checksum will verify the bytes), the part is the whole file (a run died
   before the rename): verify it without fetching. Otherwise start over, free.
5. A size from the server that differs from the catalog's ``file:size`` is final
   (``size-mismatch``). A body shorter than the size announced is a failed attempt that keeps
   its bytes for the next one (fsynced first). A body stops as soon as it passes the size
   known for it (``file:size``, else Content-Length; decoded bytes for gzip): that is final
   too (``size-mismatch``), not a restart. With no size known, the body stops at the cap
   (``max_asset_size``, or the request's ``max_size``: ``too-large``). A body starts only when
   the disk keeps its reserve after the bytes announced (``space.py``).
6. Hash while streaming (the part's existing bytes first); verify by the best evidence
   (``checks.verify``). A mismatch discards the part and restarts from zero once; a second one
   is final (``checksum-mismatch``).
7. An MD5-looking S3 ETag is weak evidence: the same bytes twice that disagree with it are kept,
   verified by ``size``; after :data:`ETAG_DISTRUST_AFTER` different assets of a host did so,
   that host's ETags are no longer used. Not once a response of the transfer proved the ETag
   is the MD5 (a whole-object MD5 header agreeing with it, ``checks.etag_is_md5``): then the
   same wrong bytes twice are a fault that repeats (one resumed at the same byte and damaged
   the same way), and the second mismatch is final like any other.
8. A gzip/deflate body sent despite ``identity`` is unwrapped; its Content-Length described
   the encoded bytes, so only ``file:size`` (or a checksum) verifies it, and it cannot resume.
9. An HTML page where the file should be, with nothing to verify it by, is final
   (``html-response``); so is ``checksum: required`` with no checksum known (``no-checksum``).
10. Retries follow the :class:`RetryPolicy` (``policy.next_attempt``) within the transfer's
    :class:`~mlhub_sync.transfer.budget.Budget`: progress (the part grown past its longest so
    far, at ``min_rate`` or better) resets the failure count and moves the deadline; no new
    attempt starts once ``asset_deadline`` seconds passed without progress. A name that does
    not resolve is retried ``max_dns_retries`` times. 400/401/403/404/410 are final.
11. A file of :data:`RECORD_PARTIAL_FROM` bytes or more reports its start (``on_started``:
    what lets a killed run resume it) when its body starts; a smaller one only if its transfer
    ends unfinished, which costs less than journaling every start.
12. ``fsync`` (a :class:`Sync`, the driver picks the thread) then ``os.replace``: a file under
    its final name is always complete and verified. A fresh ``.part`` is a new inode.
    Folders and files are reached through the worker's :class:`~mlhub_sync.tree.Tree`, never
    through a link: a link where the asset's folder should be fails the asset (``symlink``),
    a ``.part`` or final name that is a link is replaced, never written through.
13. A conditional request (``if_none_match`` / ``if_modified_since``) answered 304 returns
    ``not_modified`` and writes nothing.
14. Each GET/HEAD attempt is signed by the ``signer`` (``net/signing.py``): the href stays
    unsigned in every result and error; the attempt sends the signer's URL and credential
    headers (to the URL's origin only, never across a redirect to another). A signature comes
    from the signer's cache inline (no I/O); with none usable (none yet, or about to expire)
    the transfer yields a :class:`Sign`, which the driver carries out off its loop (a helper
    thread: a token request never holds up other transfers; ``transfer/signing.py``). A
    401/403 to a signed request renews the signature once and tries again; a second refusal
    is final. A signer that fails is a failed attempt, retried like a connection error.

Local failures (disk full, read-only, permission denied) raise :class:`FatalLocalError`, which
stops the run; other final failures raise :class:`TransferError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from mlhub_sync.errors import TransferError
from mlhub_sync.net.redact import redact_url
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import DEFAULT_NET, NetSettings
from mlhub_sync.net.signing import Signer
from mlhub_sync.stac.checksum import Multihash, ServerMd5, server_md5
from mlhub_sync.transfer import checks, signing
from mlhub_sync.transfer.budget import Budget
from mlhub_sync.transfer.local import asset_folder, copy_local
from mlhub_sync.transfer.ops import (
    DROP,
    Failure,
    FetchState,
    Receive,
    Response,
    Sleep,
    StartedCallback,
    Steps,
    Sync,
    TransferRequest,
    TransferResult,
)
from mlhub_sync.transfer.sink import (
    Hashes,
    discard,
    local_error,
    open_sink,
    part_size,
    publish,
)
from mlhub_sync.transfer.space import FreeSpace
from mlhub_sync.tree import Entry, Folder, Tree

log = logging.getLogger("mlhub_sync.transfer")


# A ``.part`` of a file smaller than this is recorded for resuming only when its transfer ends
# unfinished (fails, or the run stops): restarting it costs less than journaling every start.
RECORD_PARTIAL_FROM = 1 << 20


ETAG_DISTRUST_AFTER = 3  # different assets whose ETag proved not to be their MD5


class Transfers:
    """The rules for one worker's transfers, and what they learn across files (which hosts'
    ETags are not MD5s, which folders are open). Holds no connection: a driver runs the steps.

    ``tree`` is the worker's output tree (its root the asset folder; the caller closes it);
    without one, each file's own folder is taken as given (:meth:`close` closes that one).
    """

    def __init__(
        self,
        *,
        policy: RetryPolicy,
        rand: Callable[[], float],
        on_started: StartedCallback | None = None,
        tree: Tree | None = None,
        net: NetSettings = DEFAULT_NET,
        clock: Callable[[], float] = time.monotonic,
        signer: Signer | None = None,
    ):
        self.policy = policy
        self.signer = signer
        self.rand = rand
        self.on_started = on_started
        self._own_tree = tree is None
        self.tree = Tree(None) if tree is None else tree
        self.net = net
        self.clock = clock
        self.space = FreeSpace(clock)
        # Hosts whose 32-hex ETags proved not to be MD5s (SSE-KMS / SSE-C uploads look alike),
        # counted per host: one asset proves nothing, several different ones make a pattern.
        self._etag_not_md5: set[str] = set()
        self._etag_misses: dict[str, set[str]] = {}

    def close(self) -> None:
        """Close the folders of a tree made here (a given tree is its owner's to close)."""
        if self._own_tree:
            self.tree.close()

    def fetch(self, req: TransferRequest, state: FetchState) -> Steps[TransferResult]:
        """Download ``req.url`` to ``req.dest`` (resuming a ``.part``), verified."""
        folder = asset_folder(self.tree, req.dest.parent)  # held while the transfer runs
        try:
            return (yield from self._fetch(req, state, folder))
        finally:
            self.tree.release(folder)

    def _fetch(
        self, req: TransferRequest, state: FetchState, folder: Folder
    ) -> Steps[TransferResult]:
        claim = checks.claim_of(req)
        if req.url.startswith("file:"):
            state.attempts = 1
            return copy_local(req, claim, folder)
        try:
            return (yield from self._download(req, claim, state, folder))
        except BaseException:
            # Unfinished (failed, or closed by a stopping run): a small file's .part is worth
            # resuming now (the next run will see it).
            deferred, state.deferred_start = state.deferred_start, None
            part_left = deferred is not None and folder.lstat(f"{req.dest.name}.part") is not None
            if deferred is not None and part_left and self.on_started is not None:
                self.on_started(*deferred)
            raise

    def head(self, url: str) -> Steps[tuple[int | None, ServerMd5 | None]]:
        """``(Content-Length, server MD5)`` from a HEAD request (retried like a GET)."""
        budget = self._budget()
        headers = checks.request_headers(url)
        renew = self.signer is not None
        while True:
            budget.begin()
            sent, reply = yield from signing.send(self.signer, url, headers, head=True)
            if isinstance(reply, Failure):
                failure = reply.error
            elif renew and signing.refused(reply.status, sent, url):
                renew = False  # once per transfer
                yield from signing.renewed(self.signer, url, sent, head=True)
                continue
            elif reply.status == 200:
                length = reply.headers.get("Content-Length")
                size = int(length) if length and length.isdigit() else None
                trust = urlsplit(url).netloc not in self._etag_not_md5
                return size, server_md5(reply.headers, full_body=True, trust_etag=trust)
            else:
                failure = checks.status_error(reply.status, reply.headers, url)
            budget.failed()
            yield from self._backoff(failure, budget)

    # -- the download loop ----------------------------------------------------------------------

    def _download(
        self, req: TransferRequest, claim: Multihash | None, state: FetchState, folder: Folder
    ) -> Steps[TransferResult]:
        part = folder.entry(f"{req.dest.name}.part")
        validator = req.resume_validator
        base = checks.request_headers(req.url)
        if req.if_none_match:
            base["If-None-Match"] = req.if_none_match
        if req.if_modified_since:
            base["If-Modified-Since"] = req.if_modified_since
        hashing = req.checksum_mode != "off"
        transferred = 0
        checksum_restarted = resumed = False
        etag_mismatch_md5: str | None = None
        etag_proven = False  # a response's whole-object MD5 header agreed with its ETag
        budget = self._budget()
        renew = self.signer is not None  # a refused signature is renewed once (rule 14)
        while True:
            state.attempts = budget.begin()
            usable = validator is not None and not validator.startswith("W/")
            offset = part_size(part) if usable else 0
            headers = base
            if offset:
                headers = {**base, "Range": f"bytes={offset}-", "If-Range": validator or ""}
            sent, reply = yield from signing.send(self.signer, req.url, headers)
            if isinstance(reply, Failure):
                budget.failed()
                yield from self._backoff(reply.error, budget)
                continue
            if renew and signing.refused(reply.status, sent, req.url):
                yield DROP
                renew = False
                yield from signing.renewed(self.signer, req.url, sent)
                continue
            if reply.status == 304 and (req.if_none_match or req.if_modified_since):
                yield DROP
                return TransferResult.not_modified_by(reply.headers, reply.url, budget.attempts)
            etag_proven = etag_proven or checks.etag_is_md5(reply.status, reply.headers)
            verdict = checks.judge(req, claim, reply.status, reply.headers, offset, validator)
            if isinstance(verdict, checks.Failed):
                yield DROP
                budget.failed()
                yield from self._backoff(verdict.error, budget)
                continue
            if isinstance(verdict, checks.Restart):
                yield DROP
                discard(part)
                validator = None
                if not verdict.free:
                    budget.failed()
                    error = TransferError(
                        verdict.why,
                        subject=redact_url(req.url),
                        retryable=True,
                        error_class="bad-response",
                    )
                    yield from self._backoff(error, budget)
                continue
            hashes = Hashes(claim, hashing, req.digests)
            body_error: Exception | None = None
            limit: checks.Limit | None = None
            if isinstance(verdict, checks.KeepWholePart):
                yield DROP
                sink = open_sink(part, offset, hashes)
            else:
                validator = verdict.validator
                self._started(req, validator, verdict.total, state)
                limit = checks.body_limit(req, verdict, self.net.max_asset_size)
                self.space.claim(part.folder.fd, checks.bytes_expected(req, verdict), str(part))
                sink = open_sink(
                    part,
                    verdict.offset,
                    hashes,
                    decode=verdict.decode,
                    limit=limit.size - verdict.offset,
                    progress=req.progress,
                )
                if sink is not None:
                    if req.progress is not None:
                        req.progress.begin(verdict.total)
                    end = yield Receive(sink)
                    transferred += sink.received
                    if end.error is None:
                        sink.finish()
                    body_error = checks.body_error(sink, end, verdict, req.url)
            if sink is None:  # the part shrank while we looked: start over
                yield DROP
                discard(part)
                validator = None
                continue
            try:
                if body_error is not None:
                    if not isinstance(body_error, TransferError) or not body_error.retryable:
                        raise body_error  # a local failure, or a final answer
                    sink.keep()  # a resume needs these bytes on disk
                    # Grown past anything reached before, fast enough: the server works, so
                    # the budget starts again (Budget.failed).
                    budget.failed(sink.size if sink.received else None)
                    sink.close()
                    yield from self._backoff(body_error, budget)
                    continue
                # A 200 to a range request starts over: only bytes kept count as resumed.
                resumed = resumed or sink.offset > 0
                decoded = isinstance(verdict, checks.Accept) and verdict.decode is not None
                trust = urlsplit(req.url).netloc not in self._etag_not_md5
                outcome = checks.verify_body(req, claim, sink, reply, decoded, limit, trust)
                if isinstance(outcome, TransferError):
                    sink.close()
                    discard(part)  # an HTML page or an unverifiable file: nothing to resume
                    raise outcome
                if isinstance(outcome, checks.Mismatch):
                    if (
                        outcome.source == "s3-etag"
                        and outcome.md5 == etag_mismatch_md5
                        and not etag_proven
                    ):
                        # The same bytes twice, still not the ETag: the ETag is not an MD5
                        # here (an encrypted or multipart upload), not a corrupted body.
                        # (Unless the server proved it is: then the damage repeated.)
                        self._etag_is_not_md5(req)
                        outcome = checks.Verified("size", outcome.md5)
                    else:
                        sink.close()
                        discard(part)
                        validator = None
                        etag_mismatch_md5 = outcome.md5 if outcome.source == "s3-etag" else None
                        if checksum_restarted:
                            raise TransferError(
                                outcome.message,
                                subject=redact_url(req.url),
                                retryable=False,
                                error_class="checksum-mismatch",
                                hint="the server keeps sending bytes that do not match the "
                                "checksum",
                            )
                        checksum_restarted = True
                        log.info("%s: %s; downloading again from zero", req.dest.name, outcome)
                        continue
                synced = yield Sync(sink.fd)
                if synced is not None:
                    raise local_error(synced, part)
                sink.close()
                attempts = budget.attempts
                return _finish(
                    req, part, reply, outcome, validator, transferred, attempts, resumed, hashes
                )
            finally:
                sink.close()

    def _etag_is_not_md5(self, req: TransferRequest) -> None:
        log.info("%s: its ETag is not its MD5; verified by size", req.dest.name)
        host = urlsplit(req.url).netloc
        misses = self._etag_misses.setdefault(host, set())
        misses.add(req.url)
        if len(misses) >= ETAG_DISTRUST_AFTER:
            log.info("%s: ETags are not MD5s on this host; not using them", host)
            self._etag_not_md5.add(host)

    def _started(
        self, req: TransferRequest, validator: str | None, total: int | None, state: FetchState
    ) -> None:
        if self.on_started is None:
            return
        if total is not None and total < RECORD_PARTIAL_FROM:
            state.deferred_start = (req, validator, total)
        else:
            state.deferred_start = None
            self.on_started(req, validator, total)

    def _budget(self) -> Budget:
        return Budget(self.policy, self.net, self.clock, self.rand)

    def _backoff(self, failure: TransferError, budget: Budget) -> Steps[None]:
        wait = budget.wait(failure)  # or raise it: final, or out of patience
        log.debug("%s: %s; retry in %.2fs", failure.subject, failure.message, wait)
        yield Sleep(wait)


def _finish(
    req: TransferRequest,
    part: Entry,
    reply: Response,
    verified: checks.Verified,
    validator: str | None,
    transferred: int,
    attempts: int,
    resumed: bool,
    hashes: Hashes,
) -> TransferResult:
    stat = publish(part, req.dest.name)
    headers = reply.headers
    return TransferResult(
        stat.st_size, stat.st_mtime_ns, verified.md5, validator, verified.by, transferred,
        attempts, resumed, reply.url, headers.get("Last-Modified"),
        hashes.extra_hex() if hashes.extra else {}, etag=headers.get("ETag"),
    )  # fmt: skip
