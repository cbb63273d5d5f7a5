"""What every network edge shares: the retry policy (``retry``), secret redaction
(``redact``) and the JSON/API client on requests (``client``).

May import: ``errors``, ``_version``, ``progress``.
"""
