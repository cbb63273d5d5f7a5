"""Transfers: one file's resumable, verified GET into ``{path}.part``, and the drivers that run
many at once.

- ``ops``: the plain-data seam (operations a transfer yields, results a driver sends back;
  the request and result of a whole transfer);
- ``rules``: the transfer itself, a generator (its rules are the module's docstring);
- ``checks``: its judgements, pure (what a response means, how many bytes a body may bring,
  what bytes are verified by); ``budget``: its patience (retries, the deadline, progress);
- ``sink``: ``.part`` files (fresh, resumed, written, hashed, limited); ``space``: free space;
- ``curl``: the production driver, libcurl's multi interface; ``easy``: its easy handles
  (options, callbacks, the redirect guard, what failures mean); ``fsync``: where fsync runs;
- ``scripted``: a synchronous driver playing recorded responses (for tests);
- ``signing``: how a transfer signs each request (``net/signing.py``'s ``Signer``) and the
  driver's helper threads for a signer's I/O;
- ``local``: ``file:`` copies, hard links, output folders.

May import: ``errors``, ``tree``, ``net``, ``stac``.
"""
