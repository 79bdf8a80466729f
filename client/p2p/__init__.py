"""Peer-to-peer sync of Datanet shards. Today: the sans-I/O set reconciliation (the Node issue adds the libp2p
host, the sync stream, gossip and discovery around it)."""
