"""Where a catalog comes from: the MLHub API (``mlhub``), a catalog archive (``archive``),
a static STAC catalog (``stac``), a STAC API search (``stac_api``), object-store prefixes
read through path templates (``s3``, ``azure``: each a lister of ``listing.ListedObject``
values, made a catalog by ``flat``, with its ``sidecar`` table); what they hand on is in
``base``.

May import: ``errors``, ``tree``, ``net``, ``progress``, ``state``, ``stac``, ``selection``,
``config``, ``transfer``.
"""
