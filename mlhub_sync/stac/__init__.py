"""STAC documents as values: parsing items, collections and assets (``document``), href
normalisation, identity and local-href checks (``href``), ``file:checksum`` multihashes and
server-sent MD5s (``checksum``). Pure: no I/O beyond what a caller hands in.

May import: ``errors``, ``net`` (redaction).
"""
