"""mlhub-sync: declarative sync of STAC / Radiant MLHub datasets to disk.

``from mlhub_sync import Dataset`` gives the Python API (see :mod:`mlhub_sync.api`).
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Dataset", "__version__"]

if TYPE_CHECKING:
    from .api import Dataset


def __getattr__(name: str) -> Any:
    # Imported lazily: the API pulls in the whole engine, which imports this package first.
    if name == "Dataset":
        from .api import Dataset  # noqa: PLC0415

        return Dataset
    raise AttributeError(f"module 'mlhub_sync' has no attribute {name!r}")
