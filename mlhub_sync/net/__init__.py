"""What every network edge shares: the retry policy (``retry``), the network limits of a
dataset (``settings``), which redirects may be followed (``redirects``), secret redaction
(``redact``), catalog text made safe to show (``display``: terminals, CSV cells), what a
failed request means in words (``failures``) and the JSON/API client on requests (``client``).

May import: ``errors``, ``_version``, ``progress``.
"""
