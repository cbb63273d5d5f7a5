"""Path templates: how a flat tree of files (an object-store prefix without STAC) becomes
collections, items and assets (pure).

A template is a key pattern relative to the source's prefix, in ``/``-separated segments::

    "{split}_features/{item}/{asset}.tif"          # train_features/abc1/B02.tif
    "{split}_labels/{item}.tif"                     # train_labels/abc1.tif (asset: the stem)
    "data/{tile}/{date:%Y%m%d}/{_}_{asset}_{_}.tif" # data/00/20190606/00_B01_20190606.tif

- ``{collection}``, ``{item}``, ``{asset}`` are the layout's names. Without ``{collection}``
  the key lands in the source's default collection; without ``{asset}`` the asset key is the
  file name's stem; without ``{item}`` the item id is the other named fields' values joined
  with ``_`` (``00_20190606`` above), so one item gathers the files that share them.
- ``{date:FORMAT}`` (strftime codes, e.g. ``%Y%m%d``) gives the item's datetime (UTC).
- Any other ``{name}`` becomes an item property (``split: train``); a name used twice must
  match the same text both times.
- ``{_}`` matches anything within a segment and is kept nowhere.

A template may also be a mapping, ``{pattern: "source/{item}.tif", collection: ..., asset:
...}``: its ``collection`` and ``asset`` are constants for the keys it matches (a pattern may
not also have that field), so a tree whose folders are not the collection ids (``source/``,
``labels/``) still lands in the collections and asset keys a catalog had.

A field matches one or more characters within a segment (never a ``/``), as few as the rest of
the pattern allows. The first template of a list that matches a key wins; a key that matches
none is counted and listed by the caller. :func:`compile_templates` refuses a bad template
with a message naming it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

LAYOUT_FIELDS = ("collection", "item", "asset")

# strftime codes a template's date may use, as the digits they match
_DATE_CODES = {
    "Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{2}", "d": r"\d{2}", "j": r"\d{3}",
    "H": r"\d{2}", "M": r"\d{2}", "S": r"\d{2}", "%": "%",
}  # fmt: skip

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)?(?::([^{}]*))?\}")


@dataclass(frozen=True)
class KeyMatch:
    """What one key is: its collection, item and asset, and the item's datetime and
    properties taken from the key."""

    collection: str
    item: str
    asset: str
    datetime: dt.datetime | None = None
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Template:
    """One compiled template (build with :func:`compile_templates`)."""

    text: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]  # the named fields in order of first appearance (``date`` too)
    date_format: str | None
    fixed: Mapping[str, str] = field(default_factory=dict)  # constant collection / asset

    def match(self, key: str, default_collection: str) -> KeyMatch | None:
        """What ``key`` is under this template, or ``None`` when it does not match."""
        found = self.pattern.fullmatch(key)
        if found is None:
            return None
        values = {name: found.group(name) for name in self.names}
        when = None
        if self.date_format is not None:
            try:
                when = dt.datetime.strptime(values["date"], self.date_format).replace(tzinfo=dt.UTC)
            except ValueError:
                return None  # digits that are no date (20191332): not this template's key
        others = [n for n in self.names if n not in LAYOUT_FIELDS]
        item = values.get("item") or "_".join(values[n] for n in others) or "_"
        return KeyMatch(
            collection=values.get("collection") or self.fixed.get("collection", default_collection),
            item=item,
            asset=values.get("asset") or self.fixed.get("asset") or _stem(key),
            datetime=when,
            properties={n: values[n] for n in others if n != "date"},
        )


TemplateSpec = str | Mapping[str, str]
"""A template as a spec gives it: the pattern, or ``{pattern, collection?, asset?}``."""


def compile_templates(templates: TemplateSpec | Sequence[TemplateSpec]) -> tuple[Template, ...]:
    """Compile one template or a list; ``ValueError`` naming the template and the problem."""
    texts = [templates] if isinstance(templates, str | Mapping) else list(templates)
    if not texts:
        raise ValueError("give at least one template")
    return tuple(_compile_spec(text) for text in texts)


def _compile_spec(spec: TemplateSpec) -> Template:
    if isinstance(spec, str):
        return _compile(spec)
    extra = sorted(set(spec) - {"pattern", "collection", "asset"})
    pattern = spec.get("pattern")
    if not isinstance(pattern, str) or extra:
        raise ValueError(
            f"template {dict(spec)!r}: a mapping takes pattern (required), collection, asset"
        )
    template = _compile(pattern)
    fixed = {name: value for name, value in spec.items() if name != "pattern"}
    for name, value in fixed.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"template {pattern!r}: {name} must be a non-empty text")
        if name in template.names:
            raise ValueError(f"template {pattern!r}: {{{name}}} is in the pattern and fixed too")
    return replace(template, fixed=fixed)


def match_key(templates: Sequence[Template], key: str, default_collection: str) -> KeyMatch | None:
    """The first template's reading of ``key``, or ``None`` when no template matches it."""
    for template in templates:
        found = template.match(key, default_collection)
        if found is not None:
            return found
    return None


def _compile(text: str) -> Template:
    if not text or text.startswith("/") or "//" in text:
        raise ValueError(f"template {text!r}: a relative key pattern like '{{item}}/{{asset}}.tif'")
    regex: list[str] = []
    names: list[str] = []
    date_format: str | None = None
    position = 0
    for found in _FIELD.finditer(text):
        literal = text[position : found.start()]
        if "{" in literal or "}" in literal:
            raise ValueError(f"template {text!r}: unbalanced braces in {literal!r}")
        regex.append(re.escape(literal))
        name, spec = found.group(1), found.group(2)
        if name is None:
            raise ValueError(f"template {text!r}: a field needs a name, e.g. {{item}}")
        if name == "_":
            if spec is not None:
                raise ValueError(f"template {text!r}: {{_}} takes no format")
            regex.append(r"[^/]+?")
        elif name == "date":
            if spec is None:
                raise ValueError(f"template {text!r}: give the date's format, e.g. {{date:%Y%m%d}}")
            if "date" in names:
                raise ValueError(f"template {text!r}: one {{date:...}} per template")
            regex.append(f"(?P<date>{_date_regex(text, spec)})")
            names.append("date")
            date_format = spec
        else:
            if spec is not None:
                raise ValueError(f"template {text!r}: only {{date:...}} takes a format")
            if name in names:
                regex.append(f"(?P={name})")  # the same text again
            else:
                regex.append(f"(?P<{name}>[^/]+?)")
                names.append(name)
        position = found.end()
    tail = text[position:]
    if "{" in tail or "}" in tail:
        raise ValueError(f"template {text!r}: unbalanced braces in {tail!r}")
    regex.append(re.escape(tail))
    return Template(text, re.compile("".join(regex)), tuple(names), date_format)


def _date_regex(text: str, spec: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(spec):
        char = spec[i]
        if char == "%":
            code = spec[i + 1 : i + 2]
            if code not in _DATE_CODES:
                raise ValueError(
                    f"template {text!r}: the date format code %{code} is not supported "
                    f"(use {', '.join('%' + c for c in _DATE_CODES if c != '%')})"
                )
            out.append(_DATE_CODES[code])
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def _stem(key: str) -> str:
    name = PurePosixPath(key).name
    return name.split(".", 1)[0] or name
