"""What a federated round sends, as plain tensors: the trainable weights of FFA-LoRA (B matrices and the head).

Every member starts a round from the same global weights and the same frozen A (seeded, checked by its hash),
trains B and the classifier head, and sends them back. Flower's FedAvg (with SecAgg+: only the sum is ever
opened) takes the weighted mean Σ n_i x_i / Σ n_i. For B that mean is exact: with A shared, the mean of the B
equals the mean of the updates B·A. For the head it is not what we want when members hold different labels: a
row of a label one member holds would be diluted by the members that never trained it. So each member sends the
head's row of a label scaled by (its records of that label / its records), and the label counts as another
tensor; the coordinator divides the summed rows by the summed counts (`finish_head`): each label's row is then
the mean over the members that hold it, weighted by their records of it, and no member's counts are seen alone.

The wire list is the tensors in name order, then the counts (`COUNTS`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from client.federation.errors import FederationError

Array = npt.NDArray[np.float32]
COUNTS = "label_counts"  # the last tensor on the wire: (records of each label) / records


def is_head(name: str, tensor_rows: int, labels: int) -> bool:
    """A classifier head's tensor (weight or bias): one row per label, not a LoRA matrix."""
    return ".lora_" not in name and tensor_rows == labels


def a_hash(named: dict[str, Array]) -> str:
    """The frozen A matrices' fingerprint (names, shapes, bytes): members and coordinator must share them."""
    digest = hashlib.sha256()
    for name in sorted(named):
        if ".lora_A." in name:
            tensor = np.ascontiguousarray(named[name], dtype=np.float32)
            digest.update(f"{name}:{tensor.shape}\n".encode())
            digest.update(tensor.tobytes())
    return digest.hexdigest()


def to_wire(trained: dict[str, Array], names: Sequence[str], label_ids: Sequence[int], labels: int) -> list[Array]:
    """A member's reply: the trained tensors in `names` order, head rows scaled by each label's share of its
    records, then the shares themselves."""
    if sorted(trained) != list(names):
        raise FederationError("This member's trained weights do not match the round's; the round's shape differs.")
    counts = np.bincount(np.asarray(label_ids, dtype=np.int64), minlength=labels).astype(np.float32)
    if counts.shape[0] != labels:
        raise FederationError("A record carries a label the round does not know.")
    share = (counts / np.float32(max(len(label_ids), 1))).astype(np.float32)
    out: list[Array] = []
    for name in names:
        tensor = np.asarray(trained[name], dtype=np.float32)
        if is_head(name, tensor.shape[0], labels):
            tensor = (tensor * share.reshape((-1,) + (1,) * (tensor.ndim - 1))).astype(np.float32)
        out.append(tensor)
    out.append(share)
    return out


def finish_head(
    mean: Sequence[Array], names: Sequence[str], labels: int, previous: dict[str, Array]
) -> tuple[dict[str, Array], Array]:
    """The round's global weights from Flower's weighted mean of the members' wire lists: head rows divided by
    the mean share of their label (a label no member holds keeps its previous row). Returns them and the mean
    shares (the round's label mix, over all members together)."""
    if len(mean) != len(names) + 1:
        raise FederationError(f"The round's aggregate has {len(mean)} tensors, not {len(names) + 1}.")
    share = np.asarray(mean[-1], dtype=np.float32)
    if share.shape != (labels,):
        raise FederationError("The round's aggregate carries no label counts of the right shape.")
    # Every honest member's shares are >= 0 and sum to 1, and so does their mean (secure aggregation's rounding
    # aside): anything else is a member's doing, and its division would blow up.
    if not np.all(np.isfinite(share)) or share.min() < -1e-4 or abs(float(share.sum()) - 1.0) > 1e-3:
        raise FederationError("The round's label shares do not add up; a member sent a malformed reply.")
    held = share > 1e-5  # above secure aggregation's rounding
    out: dict[str, Array] = {}
    for name, tensor in zip(names, mean[:-1], strict=True):
        tensor = np.asarray(tensor, dtype=np.float32)
        if tensor.shape != previous[name].shape:
            raise FederationError(f"The round's aggregate has the wrong shape for {name}.")
        if is_head(name, tensor.shape[0], labels):
            shape = (-1,) + (1,) * (tensor.ndim - 1)
            divided = tensor / np.where(held, share, 1.0).reshape(shape)
            tensor = np.where(held.reshape(shape), divided, previous[name]).astype(np.float32)
        if not np.all(np.isfinite(tensor)):
            raise FederationError(f"The round's aggregate of {name} is not finite; a member sent a malformed reply.")
        out[name] = tensor
    return out, share
