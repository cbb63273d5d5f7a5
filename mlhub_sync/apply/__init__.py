"""Carrying a plan out: the executor (``executor``: plan steps in, results to the single
journal writer), where jobs run (``runner``: the :class:`Runner` interface and its libcurl
threads), what a job is (``jobs``) and the error report (``report``).

May import: ``errors``, ``tree``, ``net``, ``progress``, ``state``, ``stac``, ``plan``,
``transfer``.
"""
