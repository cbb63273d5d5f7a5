"""Carrying a plan out: the executor (``executor``: plan steps to transfers, results to the
single journal writer) and the error report (``report``).

May import: ``errors``, ``net``, ``progress``, ``state``, ``stac``, ``plan``, ``transfer``.
"""
