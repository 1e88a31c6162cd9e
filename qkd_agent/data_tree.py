"""An owned libyang data forest (all top-level siblings), freed explicitly.

The Python bindings leave the memory of parsed trees to the caller and track only one node;
the datastore needs whole forests (one top-level node per module) that it duplicates, merges,
prints and queries by XPath. :class:`DataTree` holds the first sibling, frees the forest on
:meth:`free` (or on leaving a ``with`` block) and never hands out dangling pointers.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import libyang
from _libyang import ffi, lib

from qkd_agent.libyang_errors import LibyangIssue, LibyangParseError, collect_issues, parse_data


class DataTree:
    """A libyang data forest; ``None`` root means empty data."""

    def __init__(self, ctx: libyang.Context, first: object | None) -> None:
        self._ctx = ctx
        self._first = first if first not in (None, ffi.NULL) else None

    @classmethod
    def parse(
        cls,
        ctx: libyang.Context,
        text: str,
        fmt: str = "json",
        *,
        config_only: bool = True,
        validate: bool = True,
    ) -> DataTree:
        """Parse (and validate) a whole data tree; see :func:`libyang_errors.parse_data`."""
        node = parse_data(ctx, text, fmt, config_only=config_only, validate=validate)
        tree = cls(ctx, None if node is None else node.cdata)
        tree._rewind()
        return tree

    def _rewind(self) -> None:
        if self._first is not None:
            self._first = lib.lyd_first_sibling(self._first)

    @property
    def empty(self) -> bool:
        return self._first is None

    @property
    def first(self) -> object | None:
        """The first top-level node (a cffi pointer), for in-place changes."""
        return self._first

    def validate(self) -> None:
        """Validate the whole forest as configuration (state data is an error), as libyang
        does after parsing: types, keys, when, must, leafref, mandatory, unique, min/max."""
        if self._first is None:
            raise LibyangParseError(
                [LibyangIssue("an empty configuration is not valid", None, None)]
            )
        lib.ly_err_clean(self._ctx.cdata, ffi.NULL)
        tree_p = ffi.new("struct lyd_node **", self._first)
        ret = lib.lyd_validate_all(tree_p, self._ctx.cdata, lib.LYD_VALIDATE_NO_STATE, ffi.NULL)
        self._first = tree_p[0] if tree_p[0] != ffi.NULL else None
        self._rewind()
        if ret != lib.LY_SUCCESS:
            raise LibyangParseError(collect_issues(self._ctx))

    def duplicate(self) -> DataTree:
        """A deep copy of the whole forest."""
        if self._first is None:
            return DataTree(self._ctx, None)
        out = ffi.new("struct lyd_node **")
        if lib.lyd_dup_siblings(self._first, ffi.NULL, lib.LYD_DUP_RECURSIVE, out) != lib.LY_SUCCESS:
            raise LibyangParseError(collect_issues(self._ctx))
        return DataTree(self._ctx, out[0])

    def merge_from(self, other: DataTree) -> None:
        """Merge ``other`` into this forest (list entries matched by key); ``other`` is
        consumed and left empty."""
        if other._first is None:
            return
        if self._first is None:
            self._first, other._first = other._first, None
            return
        target = ffi.new("struct lyd_node **", self._first)
        if lib.lyd_merge_siblings(target, other._first, lib.LYD_MERGE_DESTRUCT) != lib.LY_SUCCESS:
            raise LibyangParseError(collect_issues(self._ctx))
        other._first = None
        self._first = target[0]
        self._rewind()

    def print(self, fmt: str = "json") -> str:
        """The forest as compact RFC 7951 JSON or XML ("" when empty)."""
        if self._first is None:
            return ""
        buffer = ffi.new("char **")
        data_format = lib.LYD_JSON if fmt == "json" else lib.LYD_XML
        flags = lib.LYD_PRINT_WITHSIBLINGS | lib.LYD_PRINT_SHRINK
        if lib.lyd_print_mem(buffer, self._first, data_format, flags) != lib.LY_SUCCESS:
            raise LibyangParseError(collect_issues(self._ctx))
        try:
            return ffi.string(buffer[0]).decode() if buffer[0] != ffi.NULL else ""
        finally:
            lib.free(buffer[0])

    def select_xpath(self, xpath: str) -> DataTree:
        """A new forest with the nodes ``xpath`` selects, each with its whole subtree and its
        ancestors (list ancestors with their keys). ``xpath`` uses module names as prefixes."""
        result = DataTree(self._ctx, None)
        if self._first is None:
            return result
        found = ffi.new("struct ly_set **")
        lib.ly_err_clean(self._ctx.cdata, ffi.NULL)
        if lib.lyd_find_xpath(self._first, xpath.encode(), found) != lib.LY_SUCCESS:
            raise LibyangParseError(collect_issues(self._ctx))
        try:
            flags = lib.LYD_DUP_RECURSIVE | lib.LYD_DUP_WITH_PARENTS
            for i in range(found[0].count):
                out = ffi.new("struct lyd_node **")
                if lib.lyd_dup_single(found[0].dnodes[i], ffi.NULL, flags, out) != lib.LY_SUCCESS:
                    raise LibyangParseError(collect_issues(self._ctx))
                top = out[0]
                while top.parent != ffi.NULL:
                    top = ffi.cast("struct lyd_node *", top.parent)
                result.merge_from(DataTree(self._ctx, top))
        finally:
            lib.ly_set_free(found[0], ffi.NULL)
        return result

    def free(self) -> None:
        if self._first is not None:
            lib.lyd_free_all(self._first)
            self._first = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.free()
