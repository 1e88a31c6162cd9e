"""Identifier types used across the controller (all are strings on the wire)."""

from __future__ import annotations

from typing import NewType

#: ``qkdn_id`` of a node (yang:uuid).
NodeId = NewType("NodeId", str)
#: ``qkdl_id`` of a link, physical or virtual (yang:uuid).
LinkId = NewType("LinkId", str)
#: Session identifier: the ETSI 004 KSID and the ETSI 015 ``app_id`` (yang:uuid).
SessionId = NewType("SessionId", str)
#: SAE / application identifier as verified by the KM from the client certificate.
SaeId = NewType("SaeId", str)
