"""RFC 6241 ``<rpc-error>``: the agent's one translation of failures to the NETCONF wire.

Every layer of the agent raises :class:`RpcError` (or lets a :class:`qkdn.errors.QkdnError`
reach the session, which maps it to ``operation-failed``); only the session serialises it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from lxml import etree

from qkdn.errors import QkdnError
from qkdn.namespaces import NETCONF_BASE_NS


class ErrorType(StrEnum):
    TRANSPORT = "transport"
    RPC = "rpc"
    PROTOCOL = "protocol"
    APPLICATION = "application"


class ErrorTag(StrEnum):
    IN_USE = "in-use"
    INVALID_VALUE = "invalid-value"
    TOO_BIG = "too-big"
    MISSING_ATTRIBUTE = "missing-attribute"
    BAD_ATTRIBUTE = "bad-attribute"
    UNKNOWN_ATTRIBUTE = "unknown-attribute"
    MISSING_ELEMENT = "missing-element"
    BAD_ELEMENT = "bad-element"
    UNKNOWN_ELEMENT = "unknown-element"
    UNKNOWN_NAMESPACE = "unknown-namespace"
    ACCESS_DENIED = "access-denied"
    LOCK_DENIED = "lock-denied"
    RESOURCE_DENIED = "resource-denied"
    ROLLBACK_FAILED = "rollback-failed"
    DATA_EXISTS = "data-exists"
    DATA_MISSING = "data-missing"
    OPERATION_NOT_SUPPORTED = "operation-not-supported"
    OPERATION_FAILED = "operation-failed"
    PARTIAL_OPERATION = "partial-operation"
    MALFORMED_MESSAGE = "malformed-message"


@dataclass
class RpcError(QkdnError):
    """One ``<rpc-error>``. ``info`` maps error-info child names (e.g. ``bad-element``,
    ``session-id``) to their text."""

    tag: ErrorTag
    message: str
    type: ErrorType = ErrorType.APPLICATION
    severity: str = "error"
    app_tag: str | None = None
    path: str | None = None
    info: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.tag}: {self.message}")

    def to_xml(self) -> etree._Element:
        """The ``<rpc-error>`` element in the NETCONF base namespace."""
        q = f"{{{NETCONF_BASE_NS}}}"
        err = etree.Element(q + "rpc-error", nsmap={None: NETCONF_BASE_NS})
        etree.SubElement(err, q + "error-type").text = str(self.type)
        etree.SubElement(err, q + "error-tag").text = str(self.tag)
        etree.SubElement(err, q + "error-severity").text = self.severity
        if self.app_tag:
            etree.SubElement(err, q + "error-app-tag").text = self.app_tag
        if self.path:
            etree.SubElement(err, q + "error-path").text = self.path
        msg = etree.SubElement(err, q + "error-message")
        msg.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        msg.text = self.message
        if self.info:
            info = etree.SubElement(err, q + "error-info")
            for name, value in self.info.items():
                etree.SubElement(info, q + name).text = value
        return err
