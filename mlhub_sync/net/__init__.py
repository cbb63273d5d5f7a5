"""What every network edge shares: the retry policy (``retry``), the network limits of a
dataset (``settings``), which redirects may be followed (``redirects``), secret redaction
(``redact``) and the JSON/API client on requests (``client``).

May import: ``errors``, ``_version``, ``progress``.
"""
