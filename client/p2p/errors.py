"""Errors of the p2p layer; every message is one sentence.

P2PError
└── ProtocolViolation   a peer sent a malformed, oversized or inconsistent message (cut it off)
"""

from __future__ import annotations

from client.errors import ClientError


class P2PError(ClientError):
    pass


class ProtocolViolation(P2PError):
    pass
