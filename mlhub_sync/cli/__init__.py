"""The ``mlhub-sync`` command: the only place that prints or exits.

``parser`` is the command line's grammar; ``commands`` runs the commands, maps errors to exit
codes and handles signals; ``render`` turns results into every text and JSON format;
``terminal`` keeps control characters from a catalog out of log lines. May import anything.
"""

from mlhub_sync.cli.commands import main

__all__ = ["main"]
