"""Which assets are desired, and where they go: the filters (``filters``, pure), the on-disk
layout (``layout``, pure), the STAC API query extension evaluated on an item (``query``,
pure), path templates that read a flat tree's keys as collection, item and asset
(``template``, pure) and the selection of one dataset's desired assets (``desired``).

May import: ``errors``, ``stac``, ``state``.
"""
