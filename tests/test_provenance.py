"""Provenance in the vault: own and received records, the on-chain binding, carried batch claims checked with real
Groth16 proofs, and proving again when a shard is bound."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from client.contribution import local_datanet_id, proof_folder, prove_for_binding, prove_pending
from client.identity import Identity
from client.provenance import claim_problem, merkle_path, verify_claims
from client.records import canonical_bytes
from prover.commitment import record_digest, record_leaf
from prover.merkle import MerkleProof
from prover.merkle import verify as verify_path
from storage.errors import StorageError
from storage.key_file import Argon2Params
from storage.provenance import BatchClaim
from storage.shard import ChainBinding, NewRecord
from storage.shard_schema import _MIGRATIONS, migrate
from storage.vault import Vault

FAST = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)
PEER = "12D3KooWExamplePeer"


def record(n: int) -> NewRecord:
    body = canonical_bytes({"text": f"note {n}", "label": f"l{n % 3}"})
    return NewRecord(hashlib.sha256(body).digest(), body, f"notes.jsonl:{n}")


def vault(path: Path) -> Vault:
    v, _ = Vault.create(path, keystore=None, passphrase="pw", argon2=FAST)
    v.create_shard("ward", "intent-classification").close()
    return v


@pytest.fixture(scope="module")
def proven(tmp_path_factory: pytest.TempPathFactory) -> tuple[Identity, list[BatchClaim]]:
    """A contributor's two proven batches of 16 records (real proofs), as they are carried to peers."""
    identity = Identity.generate()
    folder = tmp_path_factory.mktemp("contributor")
    v = vault(folder)
    with v.open_shard("ward") as shard:
        shard.add_records([record(i) for i in range(32)])
        prove_pending(shard, identity, folder, limit=None)
        roots = [b.root for b in shard.batches()]
        claims = [shard.provenance.claim(root) for root in roots]
    assert all(c is not None for c in claims)
    return identity, [c for c in claims if c is not None]


def test_received_records_are_never_pending_and_importing_them_again_does_not_make_them_own(tmp_path: Path) -> None:
    with vault(tmp_path).open_shard("ward") as shard:
        shard.add_records([record(i) for i in range(5)], received_from=PEER)
        assert shard.pending() == []
        assert shard.count_by_origin() == {"own": 0, "peer": 5}
        with shard.transaction() as writer:  # the user imports a file holding two of them, and one new record
            writer.add([record(3), record(4), record(9)])
        assert (writer.added, writer.duplicates, writer.already_received) == (1, 2, 2)
        assert [record_id for record_id, _ in shard.pending()] == [record(9).record_id]
        meta = shard.get(record(3).record_id).meta
        assert (meta.origin, meta.received_from) == ("peer", PEER)


def test_an_own_record_that_arrives_again_from_a_peer_stays_own(tmp_path: Path) -> None:
    with vault(tmp_path).open_shard("ward") as shard:
        shard.add_records([record(1)])
        added, duplicates = shard.add_records([record(1), record(2)], received_from=PEER)
        assert (added, duplicates) == (1, 1)
        assert shard.get(record(1).record_id).meta.origin == "own"
        assert [record_id for record_id, _ in shard.pending()] == [record(1).record_id]


def test_a_schema_4_shard_learns_which_records_it_received_and_drops_batches_that_claimed_them() -> None:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    for step in range(1, 5):
        for statement in _MIGRATIONS[step].split(";"):
            if statement.strip():
                connection.execute(statement)
    connection.execute("PRAGMA user_version = 4")
    sources = ["notes.jsonl:1", f"peer {PEER}", f"peer {PEER}", "peer notes.jsonl:7", f"peer {PEER}", "a.csv:2"]
    rows = [(record(i).record_id, record(i).body, src, 0, 10, b"\x01" * 32) for i, src in enumerate(sources)]
    connection.executemany("INSERT INTO records (id, body, source, imported_at, size, salt) VALUES (?,?,?,?,?,?)", rows)
    proved, submitted = b"\x02" * 32, b"\x03" * 32
    for root, status in ((proved, "proved"), (submitted, "submitted")):
        connection.execute(
            "INSERT INTO batches (root, count, created_at, datanet_id, recipient, proof, public, status) "
            "VALUES (?, 2, 0, '1', '1', x'00', '1,2,3,4,5', ?)",
            (root, status),
        )
    connection.execute("UPDATE records SET batch_root = ? WHERE seq IN (3, 4)", (proved,))  # a received one + own
    connection.execute("UPDATE records SET batch_root = ? WHERE seq IN (5, 6)", (submitted,))
    migrate(connection)
    origins = connection.execute("SELECT origin, received_from, batch_root FROM records ORDER BY seq").fetchall()
    assert origins == [
        ("own", None, None),
        ("peer", PEER, None),
        ("peer", PEER, None),  # its batch claimed it as this holder's and was never submitted: dropped
        ("own", None, None),  # an import whose file name starts with "peer ": still own, and pending again
        ("own", None, submitted),  # on chain already: left as it is
        ("own", None, submitted),
    ]
    assert [bytes(r[0]) for r in connection.execute("SELECT root FROM batches")] == [submitted]


def test_a_binding_is_stored_once_and_never_silently_replaced(tmp_path: Path) -> None:
    v = vault(tmp_path)
    ward = ChainBinding(31337, "0x" + "ab" * 20, 3)
    with v.open_shard("ward") as shard:
        assert shard.binding() is None
        shard.bind(ward)
        shard.bind(ward)  # the same binding again changes nothing
        with pytest.raises(StorageError, match="already bound"):
            shard.bind(ChainBinding(31337, ward.registry, 4))
    with v.open_shard("ward") as shard:
        assert shard.binding() == ward
        assert shard.unbind() and shard.binding() is None


def test_a_carried_batch_is_trusted_only_once_checked_then_gives_each_record_its_provenance(
    tmp_path: Path, proven: tuple[Identity, list[BatchClaim]]
) -> None:
    contributor, (first, _) = proven
    with vault(tmp_path).open_shard("ward") as shard:
        shard.add_records([record(i) for i in range(16)], received_from=PEER)
        store = shard.provenance
        assert store.add_claims([first], PEER, 1) == [first]
        assert store.of_record(record(3).record_id) == []  # unverified: nothing shows it
        assert store.shareable_roots() == [] and store.claim(first.root) is None  # nor forwards it
        assert verify_claims(shard) == (1, [])
        (known,) = store.of_record(record(3).record_id)
        assert known.commitment == contributor.public().identity_commitment
        assert (known.root, known.position, known.own, known.from_peer) == (first.root, 3, False, PEER)
        assert known.datanet_id == first.datanet_id and shard.pending() == []
        path = merkle_path(store.leaves_of(first.root), known.commitment, known.position)
        leaf = MerkleProof(
            record_leaf(known.commitment, record_digest(record(3).record_id), known.salt), 3, tuple(path)
        )
        assert verify_path(int.from_bytes(first.root, "big"), leaf)
        assert store.shareable_roots() == [first.root]  # verified: it may be carried on


def _forged(claims: list[BatchClaim], how: str) -> BatchClaim:
    first, second = claims
    if how == "a proof for other records":
        return BatchClaim(
            second.root, second.commitment, second.datanet_id, second.recipient, first.proof, second.records
        )
    if how == "another commitment":
        return BatchClaim(
            first.root, first.commitment + 1, first.datanet_id, first.recipient, first.proof, first.records
        )
    if how == "a wrong root":
        return BatchClaim(second.root, first.commitment, first.datanet_id, first.recipient, first.proof, first.records)
    if how == "another Datanet id":
        return BatchClaim(
            first.root, first.commitment, first.datanet_id + 1, first.recipient, first.proof, first.records
        )
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("a proof for other records", "proof does not verify"),
        ("another commitment", "do not hash to its root"),
        ("a wrong root", "do not hash to its root"),
        ("another Datanet id", "proof does not verify"),
    ],
)
def test_a_forged_claim_is_refused_and_nothing_of_it_is_kept(
    tmp_path: Path, proven: tuple[Identity, list[BatchClaim]], how: str, problem: str
) -> None:
    _, claims = proven
    forged = _forged(claims, how)
    with vault(tmp_path).open_shard("ward") as shard:
        shard.add_records([record(i) for i in range(32)], received_from=PEER)
        held = set(shard.ids())
        assert claim_problem(claims[0], held) is None and claim_problem(claims[1], held) is None
        assert problem in (claim_problem(forged, held) or "")
        store = shard.provenance
        honest = claims[0] if forged.root != claims[0].root else claims[1]
        store.add_claims([forged, honest], PEER, 1)
        verified, refused = verify_claims(shard)
        assert len(refused) == 1 and refused[0].peer == PEER and problem in refused[0].reason
        assert store.counts() == {"unverified": 0, "verified": verified}
        assert all(
            p.from_peer != PEER or p.root != forged.root
            for i in range(32)
            for p in store.of_record(record(i).record_id)
        )
        assert shard.pending() == [] and shard.count() == 32  # records that hash to their ids stay


def test_a_claim_naming_records_not_held_here_is_not_trusted(proven: tuple[Identity, list[BatchClaim]]) -> None:
    _, (first, _) = proven
    held = {record_id for record_id, _ in first.records[:-1]}
    assert claim_problem(first, held) == "it names records that are not held here"


def test_binding_proves_earlier_batches_again_once_and_their_files_follow(tmp_path: Path) -> None:
    identity = Identity.generate()
    v = vault(tmp_path)
    with v.open_shard("ward") as shard:
        shard.add_records([record(i) for i in range(16)])
        (proved,) = prove_pending(shard, identity, tmp_path, limit=None)
        (before,) = shard.batches()
        assert before.datanet_id == local_datanet_id(shard.info.uuid)
        folder = proof_folder(tmp_path, shard, before.root)
        stale = (folder / "public.json").read_bytes()
        shard.bind(ChainBinding(31337, "0x" + "ab" * 20, 5))
        assert prove_for_binding(shard, identity, tmp_path) == 1
        (after,) = shard.batches()
        assert (after.root, after.datanet_id, after.public_signals[3]) == (before.root, 5, 5)
        assert (folder / "public.json").read_bytes() != stale
        assert b'"5"' in (folder / "public.json").read_bytes()
        # a crash between the shard and the files leaves them stale: the next pass rewrites them from the shard
        (folder / "public.json").write_bytes(stale)
        assert prove_for_binding(shard, identity, tmp_path) == 0  # proved once, not again
        assert b'"5"' in (folder / "public.json").read_bytes()
        assert proved.folder == folder


def test_only_own_records_can_be_put_in_a_batch(tmp_path: Path) -> None:
    identity = Identity.generate()
    with vault(tmp_path).open_shard("ward") as shard:
        shard.add_records([record(i) for i in range(16)], received_from=PEER)
        assert prove_pending(shard, identity, tmp_path, limit=None) == []
        assert shard.batches() == []
