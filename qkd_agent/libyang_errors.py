"""libyang parsing/validation with structured errors, translated to RFC 6241 ``<rpc-error>``.

The Python bindings fold every libyang error into one message string. Here the data parser
is called through the same C library so that each stored error keeps its message, its
data/schema path and its app-tag; :func:`rpc_error_from_libyang` then maps it to the error-tag
RFC 7950 §8.3 / §15 and RFC 6241 Appendix A prescribe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libyang
from _libyang import ffi, lib
from libyang.data import DNode

from qkd_agent.rpc_error import ErrorTag, ErrorType, RpcError


@dataclass(frozen=True)
class LibyangIssue:
    """One error stored by libyang: message, path (data or schema location) and app-tag."""

    message: str
    path: str | None
    app_tag: str | None


class LibyangParseError(Exception):
    """Parsing or validation failed; ``issues`` lists libyang's errors, first one first."""

    def __init__(self, issues: list[LibyangIssue]) -> None:
        super().__init__("; ".join(issue.message for issue in issues) or "libyang error")
        self.issues = issues


_PATH = re.compile(r'^(?:Data|Schema) location "(?P<path>[^"]*)"')


def collect_issues(ctx: libyang.Context) -> list[LibyangIssue]:
    issues = []
    err = lib.ly_err_first(ctx.cdata)
    while err:
        message = ffi.string(err.msg).decode() if err.msg else "libyang error"
        raw_path = ffi.string(err.path).decode() if err.path else None
        path = None
        if raw_path:
            match = _PATH.match(raw_path)
            path = match.group("path") if match else raw_path
        app_tag = ffi.string(err.apptag).decode() if err.apptag else None
        issues.append(LibyangIssue(message, path, app_tag))
        err = err.next
    lib.ly_err_clean(ctx.cdata, ffi.NULL)
    return issues


def parse_data(
    ctx: libyang.Context,
    text: str,
    fmt: str = "json",
    *,
    config_only: bool = True,
    validate: bool = True,
) -> DNode | None:
    """Parse a whole data tree strictly (unknown nodes are errors) and, if ``validate``,
    validate it completely (types, keys, must/when, leafref, mandatory, unique, min/max).

    ``config_only`` rejects ``config false`` nodes. Returns the first top-level node (None
    for empty data); raises :class:`LibyangParseError` with libyang's errors.
    """
    parse_flags = lib.LYD_PARSE_STRICT
    validate_flags = 0
    if config_only:
        parse_flags |= lib.LYD_PARSE_NO_STATE
        validate_flags |= lib.LYD_VALIDATE_NO_STATE
    if not validate:
        parse_flags |= lib.LYD_PARSE_ONLY
    data_format = lib.LYD_JSON if fmt == "json" else lib.LYD_XML
    lib.ly_err_clean(ctx.cdata, ffi.NULL)
    in_p = ffi.new("struct ly_in **")
    buffer = ffi.new("char[]", text.encode())
    if lib.ly_in_new_memory(buffer, in_p) != lib.LY_SUCCESS:
        raise LibyangParseError(collect_issues(ctx))
    tree_p = ffi.new("struct lyd_node **")
    try:
        ret = lib.lyd_parse_data(
            ctx.cdata, ffi.NULL, in_p[0], data_format, parse_flags, validate_flags, tree_p
        )
    finally:
        lib.ly_in_free(in_p[0], 0)
    if ret != lib.LY_SUCCESS:
        issues = collect_issues(ctx)
        if tree_p[0] != ffi.NULL:
            lib.lyd_free_all(tree_p[0])
        raise LibyangParseError(issues or [LibyangIssue("invalid data", None, None)])
    if tree_p[0] == ffi.NULL:
        return None
    return DNode.new(ctx, tree_p[0])


def node_name_of(path: str | None) -> str | None:
    """The last node name of a libyang path, without prefix or predicates."""
    if not path:
        return None
    last = re.sub(r"\[[^\]]*\]", "", path).rstrip("/").rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[-1] or None


# (message pattern, error-tag, default app-tag), first match wins.
_RULES: list[tuple[re.Pattern[str], ErrorTag, str | None]] = [
    (re.compile(r"^Mandatory choice"), ErrorTag.DATA_MISSING, "missing-choice"),
    (re.compile(r"^Mandatory node"), ErrorTag.MISSING_ELEMENT, None),
    (re.compile(r"^List instance is missing its key"), ErrorTag.MISSING_ELEMENT, None),
    (re.compile(r"leafref value.*no target instance"), ErrorTag.DATA_MISSING, "instance-required"),
    (re.compile(r"required instance"), ErrorTag.DATA_MISSING, "instance-required"),
    (re.compile(r"^When condition"), ErrorTag.UNKNOWN_ELEMENT, None),
    (re.compile(r"^Must condition"), ErrorTag.OPERATION_FAILED, "must-violation"),
    (re.compile(r"^Unique data leaf"), ErrorTag.OPERATION_FAILED, "data-not-unique"),
    (re.compile(r"^Too many"), ErrorTag.OPERATION_FAILED, "too-many-elements"),
    (re.compile(r"^Too few"), ErrorTag.OPERATION_FAILED, "too-few-elements"),
    (re.compile(r"^Duplicate instance"), ErrorTag.DATA_EXISTS, None),
    (re.compile(r"state node"), ErrorTag.BAD_ELEMENT, None),
    (re.compile(r"not found as a child|^Node .* not found"), ErrorTag.UNKNOWN_ELEMENT, None),
    (re.compile(r"^Unknown (XML )?(prefix|namespace)|module .* not found"),
     ErrorTag.UNKNOWN_NAMESPACE, None),
]


_TAG_BY_APP_TAG = {
    "instance-required": ErrorTag.DATA_MISSING,
    "missing-choice": ErrorTag.DATA_MISSING,
    "must-violation": ErrorTag.OPERATION_FAILED,
    "data-not-unique": ErrorTag.OPERATION_FAILED,
    "too-many-elements": ErrorTag.OPERATION_FAILED,
    "too-few-elements": ErrorTag.OPERATION_FAILED,
}


def rpc_error_from_issue(issue: LibyangIssue) -> RpcError:
    """The ``<rpc-error>`` for one libyang error (anything unlisted is a bad value)."""
    tag, app_tag = ErrorTag.INVALID_VALUE, None
    if issue.app_tag:
        # libyang sets an app-tag for YANG constraint violations (RFC 7950 §15); a must
        # statement's own error-message replaces the text, so its tag decides.
        tag = _TAG_BY_APP_TAG.get(issue.app_tag, ErrorTag.OPERATION_FAILED)
    else:
        for pattern, rule_tag, rule_app_tag in _RULES:
            if pattern.search(issue.message):
                tag, app_tag = rule_tag, rule_app_tag
                break
    info = {}
    bad_element = node_name_of(issue.path)
    if bad_element:
        info["bad-element"] = bad_element
    return RpcError(
        tag=tag,
        message=issue.message,
        type=ErrorType.APPLICATION,
        app_tag=issue.app_tag or app_tag,
        path=issue.path,
        info=info,
    )


def rpc_error_from_libyang(error: LibyangParseError) -> RpcError:
    """The first (most relevant) error of a failed parse as an ``<rpc-error>``."""
    return rpc_error_from_issue(error.issues[0])
