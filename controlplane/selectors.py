"""Device labels and label selectors (pure).

A label is ``key=value``; keys and values share one alphabet, :data:`LABEL_PATTERN`. A
selector is a set of labels that must all match: ``hw=xeon-amx,region=eu`` on the CLI
and in ``?selector=``, a JSON object in request bodies. The empty selector matches every
device.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Label keys and values: a letter or digit, then up to 62 of ``A-Za-z0-9._/-``.
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$"
_TERM = r"\s*[A-Za-z0-9][A-Za-z0-9._/-]{0,62}\s*=\s*[A-Za-z0-9][A-Za-z0-9._/-]{0,62}\s*"
#: what ``parse_selector`` accepts, as a regular expression (the API's description)
SELECTOR_PATTERN = rf"^(\s*|{_TERM}(,{_TERM})*)$"
_LABEL = re.compile(LABEL_PATTERN)


def check_label(text: str, what: str = "label") -> str:
    """``text`` if it is a valid label key or value; ValueError (one line) if not."""
    if not _LABEL.match(text):
        raise ValueError(
            f"invalid {what} {text!r}: use 1-63 of A-Z a-z 0-9 . _ / - starting with a "
            "letter or digit"
        )
    return text


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``labels`` with every key and value checked (ValueError if one is bad)."""
    return {check_label(k, "label key"): check_label(v, "label value") for k, v in labels.items()}


def parse_selector(text: str | None) -> dict[str, str]:
    """``"k=v,k2=v2"`` as ``{"k": "v", "k2": "v2"}``; ``""``/None: ``{}``.

    ValueError (one line) for a term without ``=``, a bad key or value, or a key given
    twice with different values.
    """
    selector: dict[str, str] = {}
    if not text or not text.strip():
        return selector
    for term in text.split(","):
        term = term.strip()
        key, sep, value = term.partition("=")
        if not sep:
            raise ValueError(f"invalid selector term {term!r}: expected key=value")
        key, value = (
            check_label(key.strip(), "label key"),
            check_label(value.strip(), "label value"),
        )
        if selector.get(key, value) != value:
            raise ValueError(f"selector names {key!r} twice with different values")
        selector[key] = value
    return selector


def format_selector(selector: Mapping[str, str]) -> str:
    """The ``k=v,k2=v2`` form of ``selector`` (keys sorted); ``""`` for the empty one."""
    return ",".join(f"{k}={selector[k]}" for k in sorted(selector))


def matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """Whether a device with ``labels`` is selected: every selector label is among them."""
    return all(labels.get(key) == value for key, value in selector.items())
