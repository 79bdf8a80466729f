"""Errors of federated rounds; every message is one sentence a user can act on.

FederationError
├── NotAdmitted      the coordinator refused this node (not a member of the Datanet there, or no open round)
├── CodeRefused      the coordinator sent Flower app code that is not this client's own; nothing of it ran
└── FlowerFailed     a Flower process (SuperLink, SuperNode, the run) failed or did not start
"""

from __future__ import annotations

from client.errors import ClientError


class FederationError(ClientError):
    pass


class NotAdmitted(FederationError):
    pass


class CodeRefused(FederationError):
    exit_code = 5


class FlowerFailed(FederationError):
    pass
