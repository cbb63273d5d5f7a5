"""Where a catalog comes from: the MLHub API (``mlhub``), a catalog archive (``archive``),
a static STAC catalog (``stac``); what they hand on is in ``base``.

May import: ``errors``, ``tree``, ``net``, ``progress``, ``state``, ``stac``, ``selection``,
``config``, ``transfer``.
"""
