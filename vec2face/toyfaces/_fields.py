"""Named columns of the face world's parameter rows (identity and nuisance)."""

from __future__ import annotations

from collections.abc import Mapping


def column_index(columns: Mapping[str, int], name: str, kind: str) -> int:
    """Column of field ``name`` in a ``kind`` row laid out as ``columns`` (field -> column).

    Raises:
        ValueError: ``name`` is not one of the fields (they are listed, in column order).
    """
    try:
        return columns[name]
    except KeyError:
        raise ValueError(f"unknown {kind} field {name!r}; known: {', '.join(columns)}") from None
