"""mlhub-sync: declarative sync of STAC / Radiant MLHub datasets to disk."""

__version__ = "0.1.0"

__all__ = ["__version__"]
