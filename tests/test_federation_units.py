"""The pieces of a federated round on their own: the round's tensors (FFA-LoRA's B and the per-label head, through
Flower's weighted mean), the join messages against hostile input, the app bundle's hash, the keys, and the
guarded SuperNode refusing an app that is not this client's (a real SuperLink and SuperNode on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import json
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from client.federation import fab, flower, guard, join, tls, weights
from client.federation.errors import FederationError
from client.p2p.errors import ProtocolViolation

LABELS = 3
HEAD_W = "base_model.model.classifier.modules_to_save.default.weight"
HEAD_B = "base_model.model.classifier.modules_to_save.default.bias"
LORA_B = "base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.default.weight"
SHAPES = {HEAD_B: (LABELS,), HEAD_W: (LABELS, 4), LORA_B: (4, 2)}  # B: 4 features by rank 2
NAMES = tuple(sorted(SHAPES))


def flower_mean(replies: list[tuple[list[np.ndarray], int]]) -> list[np.ndarray]:
    """What FedAvg (and SecAgg+ once unmasked) hands the strategy: Σ n_i x_i / Σ n_i, tensor by tensor."""
    total = sum(n for _, n in replies)
    return [np.sum([r[i] * n for r, n in replies], axis=0) / total for i in range(len(replies[0][0]))]


def test_a_round_averages_b_by_records_and_each_head_row_over_the_members_holding_its_label() -> None:
    rng = np.random.default_rng(7)
    previous = {name: rng.normal(size=shape).astype(np.float32) for name, shape in SHAPES.items()}
    # member 0 holds labels 0 and 1 (3 and 1 records), member 1 holds label 1 only (2 records); nobody holds 2
    members = [[0, 0, 0, 1], [1, 1]]
    trained = [{name: rng.normal(size=t.shape).astype(np.float32) for name, t in previous.items()} for _ in members]
    replies = [(weights.to_wire(t, NAMES, ids, LABELS), len(ids)) for t, ids in zip(trained, members, strict=True)]
    finished, share = weights.finish_head(flower_mean(replies), NAMES, LABELS, previous)

    # B: the plain weighted mean (4 and 2 records), which with a shared A is the mean of the updates B·A
    np.testing.assert_allclose(finished[LORA_B], (4 * trained[0][LORA_B] + 2 * trained[1][LORA_B]) / 6, rtol=1e-6)
    # label 0: member 0 alone; label 1: member 0 (1 record) and member 1 (2 records); label 2: the previous row
    for head in (HEAD_W, HEAD_B):
        np.testing.assert_allclose(finished[head][0], trained[0][head][0], rtol=1e-5)
        np.testing.assert_allclose(finished[head][1], (trained[0][head][1] + 2 * trained[1][head][1]) / 3, rtol=1e-5)
        np.testing.assert_array_equal(finished[head][2], previous[head][2])
    np.testing.assert_allclose(share, [3 / 6, 3 / 6, 0.0], atol=1e-7)  # the labels' mix over all members together


def test_shared_a_makes_the_mean_of_b_the_mean_of_the_updates() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 5))
    bs, ns = [rng.normal(size=(4, 2)) for _ in range(3)], [5, 1, 2]

    def mean(arrays: list[np.ndarray]) -> np.ndarray:
        total: np.ndarray = np.sum([n * x for n, x in zip(ns, arrays, strict=True)], axis=0)
        return total / sum(ns)

    mean_b = mean(bs)
    np.testing.assert_allclose(mean_b @ a, mean([b @ a for b in bs]), rtol=1e-12)
    # ...which averaging A and B separately is not (why a round freezes A)
    a_s = [rng.normal(size=(2, 5)) for _ in range(3)]
    separate = mean_b @ mean(a_s)
    products = mean([b @ x for b, x in zip(bs, a_s, strict=True)])
    assert np.abs(separate - products).max() > 0.1


def test_replies_of_another_shape_are_refused_in_one_sentence() -> None:
    previous = {name: np.zeros(shape, np.float32) for name, shape in SHAPES.items()}
    with pytest.raises(FederationError, match="do not match"):
        weights.to_wire({NAMES[0]: previous[NAMES[0]]}, NAMES, [0], LABELS)
    wire = weights.to_wire(previous, NAMES, [0, 1], LABELS)
    with pytest.raises(FederationError, match="tensors"):
        weights.finish_head(wire[:-1], NAMES, LABELS, previous)
    with pytest.raises(FederationError, match="wrong shape"):
        weights.finish_head([np.zeros((9, 9), np.float32), *wire[1:]], NAMES, LABELS, previous)
    # a member's shares that do not add up (an honest mean of shares sums to 1) end the round's update
    for shares in ([0.5, 0.5, 0.5], [1.5, -0.5, 0.0], [np.nan, 1.0, 0.0]):
        with pytest.raises(FederationError, match="do not add up"):
            weights.finish_head([*wire[:-1], np.asarray(shares, np.float32)], NAMES, LABELS, previous)


def test_the_a_fingerprint_follows_a_only() -> None:
    a_name = LORA_B.replace("lora_B", "lora_A")
    state = {a_name: np.ones((2, 4), np.float32), LORA_B: np.ones((4, 2), np.float32)}
    base = weights.a_hash(state)
    assert weights.a_hash({**state, LORA_B: np.zeros((4, 2), np.float32)}) == base
    assert weights.a_hash({**state, a_name: np.full((2, 4), 2.0, np.float32)}) != base


def test_join_messages_round_trip_and_hostile_ones_are_refused(tmp_path: Path) -> None:
    key = tls.make_node_key(tmp_path / "node.key")
    request = join.JoinRequest("clinic", key, b"\x01" * 85)
    assert join.parse_request(join.encode_request(request)) == request
    ca = tls.make_server_tls(tmp_path / "tls", "127.0.0.1")[0].read_text()
    answer = join.Admission("127.0.0.1:8000", ca, "ab" * 32, "0123456789abcdef", 2)
    assert join.parse_admission(join.encode_admission(answer)) == answer

    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    ed_line = ed.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    bad_requests = [
        b"not json",
        b"[1, 2]",
        b"{" * 100_000,
        json.dumps({"datanet": "clinic", "public_key": ed_line}).encode(),  # Flower takes NIST curves only
        json.dumps({"datanet": "clinic", "public_key": "foo bar"}).encode(),  # an unknown key type
        json.dumps({"datanet": "", "public_key": key}).encode(),
        json.dumps({"datanet": "clinic", "public_key": key, "credential": "zz" * 85}).encode(),
        json.dumps({"datanet": "clinic", "public_key": key, "credential": "00"}).encode(),
        json.dumps({"datanet": "x" * 201, "public_key": key}).encode(),
    ]
    for payload in bad_requests:
        with pytest.raises(ProtocolViolation):
            join.parse_request(payload)
    good = json.loads(join.encode_admission(answer))
    for field, value in [
        ("superlink", "127.0.0.1:8000; rm -rf"),
        ("ca", "-----BEGIN PRIVATE KEY-----"),
        ("fab_sha256", "00"),
        ("federation", "../../etc"),
        ("rounds", 0),
        ("rounds", True),
        ("rounds", 10_000),
    ]:
        with pytest.raises(ProtocolViolation):
            join.parse_admission(json.dumps({**good, field: value}).encode())


def test_the_app_bundle_is_the_same_bytes_every_build_and_names_only_installed_code() -> None:
    import zipfile
    from io import BytesIO

    first = fab.build()
    fab.build.cache_clear()
    assert fab.build() == first
    names = zipfile.ZipFile(BytesIO(first)).namelist()
    assert sorted(names) == [".info/CONTENT", "pyproject.toml"]  # no code travels: the installed client's runs
    text = zipfile.ZipFile(BytesIO(first)).read("pyproject.toml").decode()
    assert "client.federation.flower_app:client_app" in text


def test_keys_are_private_files_and_the_certificate_names_the_address(tmp_path: Path) -> None:
    line = tls.make_node_key(tmp_path / "keys" / "node.key")
    assert tls.check_public_key(line) and not tls.check_public_key("ssh-rsa AAAA")
    assert stat.S_IMODE((tmp_path / "keys" / "node.key").stat().st_mode) == 0o600
    ca, cert, key = tls.make_server_tls(tmp_path / "tls", "127.0.0.1")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    server = x509.load_pem_x509_certificate(cert.read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    issuer = x509.load_pem_x509_certificate(ca.read_bytes())
    server.verify_directly_issued_by(issuer)


# A coordinator's own code: its ServerApp sends every node a message, its ClientApp would leave a mark.
FOREIGN_APP = """
import time
from pathlib import Path

from flwr.app import Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

server_app = ServerApp()
client_app = ClientApp()


@server_app.main()
def main(grid, context):
    nodes = []
    while not nodes:
        nodes = list(grid.get_node_ids())
        time.sleep(0.5)
    grid.send_and_receive([Message(RecordDict(), dst_node_id=n, message_type="train") for n in nodes], timeout=60)


@client_app.train()
def train(message, context):
    Path(context.node_config["work-dir"], "foreign-code-ran").write_text("yes")
    return Message(RecordDict(), reply_to=message)
"""


@pytest.mark.slow
def test_a_members_supernode_refuses_an_app_that_is_not_this_clients(tmp_path: Path) -> None:
    """A coordinator that submits code of its own: the guarded SuperNode exits before any of it is unpacked."""
    flower.quiet_flower(tmp_path / "flwr-cli")
    port = flower.free_port()
    link = flower.SuperLink(tmp_path / "link", "127.0.0.1", port, tls.make_server_tls(tmp_path / "tls", "127.0.0.1"))
    node = None
    try:
        link.wait_ready(lambda: False)
        key_line = tls.make_node_key(tmp_path / "member" / "node.key")
        link.register(key_line, "member")
        node = flower.start_supernode(
            tmp_path / "member",
            link.address,
            link.ca,
            tmp_path / "member" / "node.key",
            data_dir=tmp_path / "member-data",
            federation="0123456789abcdef",
            fab_sha256=fab.sha256(),
        )
        project = fab.pyproject().replace(b"client.federation.flower_app:", b"foreign.app:")
        foreign = fab.build_from(project, {"foreign/__init__.py": b"", "foreign/app.py": FOREIGN_APP.encode()})
        link.submit(foreign, {})
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.wait(120)
        assert node.returncode == guard.REFUSED_EXIT, flower.log_tail(tmp_path / "member" / "supernode.log", 20)
        log = (tmp_path / "member" / "supernode.log").read_text()
        assert "refused the app of run" in log
        assert not list((tmp_path / "member").rglob("apps/*"))  # nothing of it was installed...
        assert not (tmp_path / "member" / "foreign-code-ran").exists()  # ...or run
    finally:
        flower.stop(node)
        link.close()


def test_federation_jobs_read_in_a_few_words() -> None:
    from client.app.jobs import progress_text

    def text(progress: dict[str, object]) -> str:
        return progress_text({"progress": progress})

    assert text({"stage": "waiting for members", "members": 2, "expected": 3}) == "2/3 members joined"
    assert text({"stage": "round", "round": 1, "rounds": 2, "participants": 3}) == "round 1/2"
    assert text({"update": "/x", "round": 2, "examples": 145}) == "round 2 trained on 145 records"
    assert text({"federation": "ab", "rounds": [{"round": 1}], "adapter_id": "c" * 64}) == "adapter " + "c" * 16
    assert text({"federation": "ab", "datanet": "clinic", "rounds": [1, 2]}) == "took part in 2 rounds"


def test_the_superlink_answers_runs_and_keys_on_loopback_only() -> None:
    """Flower serves its Control and Runtime APIs on the members' port, unauthenticated: the guard keeps them to
    loopback, and members reach the Fleet API alone."""
    import trio

    answered: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        answered.append(str(scope["path"]))

    def status(path: str, client: str) -> int | None:
        sent: list[dict[str, object]] = []

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {"type": "http", "path": path, "client": (client, 40000)}
        trio.run(guard.LoopbackOnly(app), scope, None, send)
        return int(str(sent[0]["status"])) if sent else None

    assert status("/v1/control/start-run", "10.0.0.7") == 403
    assert status("/v1/runtime/acquire-task", "10.0.0.7") == 403
    assert status("/v1/control/register-node", "2001:db8::1") == 403
    assert answered == []
    assert status("/v1/fleet/pull-messages", "10.0.0.7") is None
    assert status("/health", "10.0.0.7") is None
    assert status("/v1/control/start-run", "127.0.0.1") is None and status("/v1/runtime/x", "::1") is None
    assert answered == ["/v1/fleet/pull-messages", "/health", "/v1/control/start-run", "/v1/runtime/x"]
