"""Nodes behind firewalls and in private swarms, as real `datanet node run` processes on 127.0.0.1: an
outbound-only member (no listening port at all) that reaches a relay over WebSocket only is synced with through
the relay (py-libp2p's circuit relay v2); a private swarm's members sync while a node without its key cannot even
connect; the connection cap refuses a peer past it."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.test_node import NodeProc, jsonl, make_node, nodes, records


def circuits(node: NodeProc) -> list[str]:
    return [str(a) for a in node.control().call("status")["addresses"] if "/p2p-circuit/" in a]


def wait_for_circuit(node: NodeProc, timeout: float = 60) -> str:
    """The node's address through its relay, once its reservation holds (re-checked on its `relay.reserved`)."""
    assert node.control().wait(lambda _: bool(circuits(node)), timeout=timeout, on=("relay.reserved",))
    return circuits(node)[0]


def test_an_outbound_only_member_behind_a_relay_syncs_through_it(tmp_path: Path) -> None:
    with nodes(tmp_path, 2) as (hidden, outside):
        relay = make_node(tmp_path, "relay", datanet="elsewhere")  # not a member of the Datanet: it only relays
        try:
            hidden.cli.ok("import", "ward", str(jsonl(tmp_path / "h.jsonl", range(0, 150))))
            outside.cli.ok("import", "ward", str(jsonl(tmp_path / "o.jsonl", range(100, 200))))
            relay.start("--listen", "/ip4/127.0.0.1/tcp/0/ws", "--relay-service")
            websocket = next(a for a in relay.ready["addresses"] if "/ws/" in a)  # HTTP-like traffic only
            hidden.start("--outbound-only", "--relay", websocket)
            circuit = wait_for_circuit(hidden)
            assert circuit == f"{websocket}/p2p-circuit/p2p/{hidden.peer_id}"
            status = hidden.control().call("status")
            assert status["addresses"] == [circuit]  # no listening address of its own
            outside.start()

            done = outside.cli.ok("--json", "sync", "ward", "--peer", circuit).json()
            assert (done["received"], done["sent"]) == (100, 50)
            assert records(outside) == records(hidden) == 200
            assert outside.ids() == hidden.ids()
            assert records(relay, "elsewhere") == 0
        finally:
            if relay.proc is not None:
                relay.stop()


def test_a_private_swarm_lets_its_members_sync_and_keeps_a_node_without_its_key_out(tmp_path: Path) -> None:
    with nodes(tmp_path, 3) as (a, b, outsider):
        key = tmp_path / "swarm.key"
        made = a.cli.run("node", "swarm-key", str(key))
        assert made.code == 0 and stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_text().splitlines()[:2] == ["/key/swarm/psk/1.0.0/", "/base16/"]
        again = a.cli.run("node", "swarm-key", str(key))
        assert again.code == 2 and "never overwritten" in again.stderr
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(40))))
        a.start("--swarm-key", str(key))
        b.start("--swarm-key", str(key))
        outsider.start()
        done = b.cli.ok("--json", "sync", "ward", "--peer", a.address).json()
        assert done["received"] == 40

        refused = outsider.cli.run("--json", "sync", "ward", "--peer", a.address, timeout=120)
        assert refused.code == 1 and records(outsider) == 0
        # No handshake ever starts without the key: the dial hangs until its deadline, or (a busy machine) the keyed
        # node drops the connection whose bytes it cannot decrypt first.
        assert "did not answer in time" in refused.stderr or "Cannot reach the peer" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
        peers = {p["peer_id"]: p for p in a.control().call("peers")}
        assert outsider.peer_id not in peers or not peers[outsider.peer_id]["connected"]

        relayed = b.cli.run("node", "run", "--swarm-key", str(key), "--relay", a.address)
        assert relayed.code == 2 and "cannot be combined with relays" in relayed.stderr  # 0.8.1 cannot, yet
        key.chmod(0o644)  # a key others can read is refused before anything starts
        exposed = b.cli.run("node", "run", "--swarm-key", str(key), "--listen", "/ip4/127.0.0.1/tcp/0")
        assert exposed.code == 2 and "chmod 600" in exposed.stderr


def test_a_peer_past_the_connection_cap_is_refused(tmp_path: Path) -> None:
    with nodes(tmp_path, 3) as (a, b, c):
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(30))))
        config = a.cli.config_dir / "config.toml"
        config.write_text(config.read_text() + "[limits]\nmax_connections = 1\n")
        a.start()
        b.start()
        c.start()
        assert b.cli.ok("--json", "sync", "ward", "--peer", a.address).json()["received"] == 30  # keeps its connection
        refused = c.cli.run("--json", "sync", "ward", "--peer", a.address, timeout=120)
        assert refused.code == 1 and records(c) == 0, refused.stderr
        assert "Cannot reach the peer" in refused.stderr  # connected, then dropped by a's resource manager
        assert len(refused.stderr.strip().splitlines()) == 1
