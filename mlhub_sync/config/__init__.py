"""The spec: YAML with positions (``loader``), pydantic models (``models``, ``sources``,
``filter_settings``), resolution into one :class:`~mlhub_sync.config.resolve.DatasetConfig` per
dataset (``resolve``), the registry of where the MLHub datasets went (``homes``, data in
``homes.yaml``), pydantic errors as ``file:line`` diagnostics (``diagnostics``), the API key,
root URL and SAS token lookup (``credentials``), and a source's ``headers:``/``sign:`` as the
network layer uses them (``access``).

May import: ``errors``, ``net`` (the retry policy), ``selection`` (filter values).
"""
