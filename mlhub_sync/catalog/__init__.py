"""The catalog on disk and in the index: safe archive extraction (``extract``), the streaming
indexer (``index``), staging and installing the unpacked tree (``install``) and bringing it all
up to date from a source (``refresh``).

May import: ``errors``, ``tree``, ``net``, ``progress``, ``state``, ``stac``, ``selection``,
``config``, ``sources``.
"""
