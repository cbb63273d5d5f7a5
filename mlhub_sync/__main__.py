"""``python -m mlhub_sync``."""

from __future__ import annotations

import sys

from mlhub_sync.cli.commands import main

sys.exit(main())
