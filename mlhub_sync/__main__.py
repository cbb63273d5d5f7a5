"""``python -m mlhub_sync``."""

import sys

from .cli import main

sys.exit(main())
