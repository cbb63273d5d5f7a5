"""The plan: what to do with each desired path, and why. ``decide`` is the pure decision
(:class:`Action`, :class:`Reason`); ``build`` streams the selection against the records and
the disk into steps and totals.

May import: ``errors``, ``stac``, ``state``.
"""
