"""mlhub-sync: declarative sync of STAC / Radiant MLHub datasets to disk.

``from mlhub_sync import Dataset`` gives the Python API (see :mod:`mlhub_sync.api`). The
package is a pipeline, one subpackage a stage; ``docs/architecture.md`` draws it.
"""

from mlhub_sync._version import __version__
from mlhub_sync.api import Dataset

__all__ = ["Dataset", "__version__"]
