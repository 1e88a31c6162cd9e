"""YANG module names, namespaces and prefixes: the one place they are spelled."""

from __future__ import annotations

from pathlib import Path

#: Folder holding the project's YANG modules (the repository's top-level ``yang/``).
YANG_DIR = Path(__file__).resolve().parent.parent / "yang"

ETSI_NODE_MODULE = "etsi-qkd-sdn-node"
ETSI_NODE_NS = "urn:etsi:qkd:yang:etsi-qkd-node"
ETSI_NODE_PREFIX = "etsi-qkdn"
ETSI_NODE_REVISION = "2022-01-30"

ETSI_TYPES_MODULE = "etsi-qkd-node-types"
ETSI_TYPES_NS = "urn:etsi:qkd:yang:etsi-qkd-node-types"
ETSI_TYPES_PREFIX = "etsi-qkdn-types"
ETSI_TYPES_REVISION = "2022-01-30"

QKDN_KM_MODULE = "qkdn-key-manager"
QKDN_KM_NS = "urn:qkdn:yang:qkdn-key-manager"
QKDN_KM_PREFIX = "qkdn-km"
QKDN_KM_REVISION = "2026-11-27"

NETCONF_BASE_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
NETCONF_NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NETCONF_MONITORING_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
YANG_LIBRARY_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-library"

BASE_1_0 = "urn:ietf:params:netconf:base:1.0"
BASE_1_1 = "urn:ietf:params:netconf:base:1.1"
