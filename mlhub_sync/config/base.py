"""The strict base of every spec model: frozen, unknown keys forbidden, no lax coercion."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Frozen, ``extra="forbid"``, strict: ``catalog_only: "no"`` is an error, not ``False``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
