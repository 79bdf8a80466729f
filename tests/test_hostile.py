"""A node (a real `datanet node run` process) under every attack of tests/hostile_peer.py at once, while an honest
member (another node process) syncs with it: each attack is refused or cut off within its bound, the honest
member gets every record, and the node keeps serving. bench/hostile.py measures the honest rate under attack."""

from __future__ import annotations

import threading
from pathlib import Path

import trio

from client.p2p.host import peer_info
from tests.hostile_peer import ATTACK_TIMEOUT, ATTACKS, Attacker, Outcome
from tests.test_node import jsonl, nodes, records, scrape

EXPECTED = {
    "plaintext": "cannot connect",
    "non-member": "refused",
    "other-chain-credential": "refused",
    "gossip-flood": "dropped",
    "outsider-gossip": "dropped",
}


def test_every_attack_at_once_is_cut_off_while_an_honest_member_syncs(tmp_path: Path) -> None:
    with nodes(tmp_path, 2) as (victim, honest):
        victim.cli.ok("import", "ward", str(jsonl(tmp_path / "v.jsonl", range(3000))))
        victim.start("--metrics", "127.0.0.1:0")
        honest.start()
        held = sorted(bytes.fromhex(i) for i in victim.ids())
        attacker = Attacker(victim.address, "ward", victim_ids=held)
        for member in attacker.members():
            victim.cli.ok("members", "ward", "add", member)
        outcomes: list[Outcome] = []
        failures: list[BaseException] = []

        async def all_attacks() -> None:
            async def one(name: str) -> None:
                outcomes.append(await attacker.run(name))

            async with trio.open_nursery() as nursery:
                for name in ATTACKS:
                    nursery.start_soon(one, name)

        def attack() -> None:
            try:
                trio.run(all_attacks)
            except BaseException as exc:  # reported below, in the test's thread
                failures.append(exc)

        attacking = threading.Thread(target=attack)
        attacking.start()
        done = honest.cli.ok("--json", "sync", "ward", "--peer", victim.address).json()
        attacking.join(timeout=2 * ATTACK_TIMEOUT)
        assert not attacking.is_alive() and not failures, failures
        assert done["received"] == 3000 and records(honest) == 3000

        ended = {o.attack: o.ended for o in outcomes}
        assert set(ended) == set(ATTACKS)
        for name, how in ended.items():
            assert how == EXPECTED.get(name, "cut off"), (name, how)
        # Each within its frame deadline (30 s), after waiting for the Datanet's one session at a time: the attacks
        # that hold it (a slow loris, a need flood) make the others, and the honest member, wait (bench/hostile.py).
        assert all(o.seconds < ATTACK_TIMEOUT for o in outcomes), outcomes
        # The node's side: each member attack cut off by name, each outsider refused at admission.
        log = (victim.cli.data_dir / "logs" / "datanet.log").read_text()
        for o in outcomes:
            if o.ended == "cut off":
                assert f"peer {o.peer_id} cut off" in log, o
            elif o.ended == "refused":
                assert f"from peer {o.peer_id}: not a member" in log, o
        dropped = scrape(victim)  # the announcements its validator dropped, by why
        assert dropped['datanet_announcements_dropped_total{why="not_a_member"}'] >= 1
        # Of the member's 300 at once, GossipSub's own queues shed most before the validator (FACTS.md); the rest
        # past the rate limit's burst are dropped by it.
        assert dropped['datanet_announcements_dropped_total{why="rate_limited"}'] >= 1
        # The node still serves: the attacker's peer id got nothing, and a second honest sync works at once.
        assert victim.control().call("status")["peer_id"] == victim.peer_id
        assert peer_info(victim.address).peer_id is not None
        again = honest.cli.ok("--json", "sync", "ward", "--peer", victim.address).json()
        assert again["received"] == 0 and records(victim) == 3000
