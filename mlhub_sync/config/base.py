"""The strict base of every spec model: frozen, unknown keys forbidden, no lax coercion."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
