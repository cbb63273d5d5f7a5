"""The ``mlhub-sync`` command: the only place that prints or exits.

``parser`` is the command line's grammar; ``commands`` runs the commands, maps errors to exit
codes and handles signals; ``render`` turns results into every text and JSON format
(``render_verify``: verify's; ``failed``: a dataset that failed, as a JSON entry;
``datasets``: the ``datasets`` command, the registry of where the MLHub datasets went);
``terminal`` sets up what the process shows: the log handler (control characters from a
catalog kept out of log lines), the progress reporter, a quiet end into a closed pipe. May
import anything.
"""

from mlhub_sync.cli.commands import main

__all__ = ["main"]
