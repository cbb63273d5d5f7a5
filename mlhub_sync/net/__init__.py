"""What every network edge shares: the retry policy (``retry``), the network limits of a
dataset (``settings``), which redirects may be followed (``redirects``), secret redaction
(``redact``), catalog text made safe to show (``display``: terminals, CSV cells), what a
failed request means in words (``failures``), the JSON/API client on requests (``client``),
per-request signing: the ``Signer`` interface, a source's headers, fixed SAS tokens
(``signing``) and Planetary Computer tokens (``planetary``).

May import: ``errors``, ``_version``, ``progress``.
"""
