"""One file's transfer: a resumable, verified GET into ``{path}.part``, and the libcurl
drivers that run many at once.

May import: ``errors``, ``net``, ``stac``.
"""
