"""A reply's ``<data>`` element already serialised, spliced into its ``<rpc-reply>`` as bytes.

``<get>`` and ``<get-config>`` of large configurations are served from bytes the datastore
keeps between commits (:mod:`qkd_agent.served_config`); parsing them back into a tree only to
serialise the ``<rpc-reply>`` again would cost what the cache saves.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from qkdn.namespaces import NETCONF_BASE_NS


@dataclass(frozen=True)
class SerialisedData:
    """The UTF-8 serialisation of one ``<data>`` element in the NETCONF base namespace,
    without XML declaration (``<data>…</data>`` or ``<data/>``). The element may rely on the
    enclosing ``<rpc-reply>`` for the base namespace only; every other namespace it uses is
    declared inside it."""

    xml: bytes

    def element(self) -> etree._Element:
        """The ``<data>`` element parsed back (for callers that want a tree)."""
        wrapper = etree.fromstring(b'<w xmlns="%s">%s</w>' % (NETCONF_BASE_NS.encode(), self.xml))
        return wrapper[0]
