"""HTTP response headers as a case-insensitive mapping (HTTP field names ignore case).

Names are stored lower-cased; repeated fields are joined with ``", "`` (RFC 9110 §5.3).
Built once per response from the header lines a driver received.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class Headers(dict[str, str]):
    """``headers.get("Content-Length")`` finds ``content-length``: lookups ignore case."""

    __slots__ = ()

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        for name, value in pairs:
            self.add(name, value)

    @classmethod
    def from_lines(cls, lines: Iterable[bytes]) -> tuple[int, Headers]:
        """The status and fields of the *last* response in raw header lines (a redirect's
        own headers come first and are dropped); status 0 when there was no status line."""
        status = 0
        headers = cls()
        for raw in lines:
            if raw.startswith(b"HTTP/"):
                parts = raw.split(None, 2)
                status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                headers = cls()
                continue
            name, colon, value = raw.decode("iso-8859-1").partition(":")
            if colon:
                headers.add(name.strip(), value.strip())
        return status, headers

    def add(self, name: str, value: str) -> None:
        """Add a field; a repeated one is joined to the earlier value."""
        key = name.lower()
        earlier = dict.get(self, key)
        dict.__setitem__(self, key, value if earlier is None else f"{earlier}, {value}")

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())
