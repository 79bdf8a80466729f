"""Poseidon Merkle trees: a fixed batch tree with inclusion proofs, and an append-only (incremental) tree.

Node hash: `Poseidon(left, right)`. Empty leaves are 0 (the documented padding of a batch and of the
contributor tree), so the empty subtree of height h hashes to `zeros[h]` with zeros[0] = 0 and
zeros[h+1] = Poseidon(zeros[h], zeros[h]). Both trees agree on the root of the same leaves (a property test
checks), which is what lets the on-chain incremental tree and the client's batch tree share one circuit.
Pure logic: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prover.errors import NotInTree, TreeFull
from prover.poseidon import FIELD, poseidon

EMPTY_LEAF = 0


@cache
def zeros(depth: int) -> tuple[int, ...]:
    """zeros[h]: the root of an empty subtree of height h, for h = 0..depth."""
    values = [EMPTY_LEAF]
    for _ in range(depth):
        values.append(poseidon(values[-1], values[-1]))
    return tuple(values)


@dataclass(frozen=True, slots=True)
class MerkleProof:
    leaf: int
    index: int
    siblings: tuple[int, ...]  # from the leaf's level up

    def root(self) -> int:
        """The root this proof leads to."""
        node, index = self.leaf, self.index
        for sibling in self.siblings:
            node = poseidon(node, sibling) if index % 2 == 0 else poseidon(sibling, node)
            index //= 2
        return node


def verify(root: int, proof: MerkleProof) -> bool:
    depth = len(proof.siblings)
    if not 0 <= proof.index < 2**depth or not all(0 <= v < FIELD for v in (proof.leaf, *proof.siblings)):
        return False
    return proof.root() == root


class MerkleTree:
    """All levels of a tree of fixed depth over the given leaves, padded with EMPTY_LEAF."""

    def __init__(self, leaves: list[int], depth: int) -> None:
        if len(leaves) > 2**depth:
            raise TreeFull(f"{len(leaves)} leaves do not fit a tree of depth {depth} ({2**depth} at most).")
        self.depth = depth
        self.levels: list[list[int]] = [list(leaves)]
        empty = zeros(depth)
        for height in range(depth):
            below = self.levels[-1]
            if len(below) % 2:
                below = [*below, empty[height]]
            self.levels.append([poseidon(below[i], below[i + 1]) for i in range(0, len(below), 2)])
        self._empty = empty

    @property
    def root(self) -> int:
        top = self.levels[-1]
        return top[0] if top else self._empty[self.depth]

    def proof(self, index: int) -> MerkleProof:
        if not 0 <= index < len(self.levels[0]):
            raise NotInTree(f"Leaf {index} is not in this tree of {len(self.levels[0])} leaves.")
        siblings = []
        position = index
        for height in range(self.depth):
            level = self.levels[height]
            sibling = position ^ 1
            siblings.append(level[sibling] if sibling < len(level) else self._empty[height])
            position //= 2
        return MerkleProof(self.levels[0][index], index, tuple(siblings))


class IncrementalTree:
    """An append-only tree (the on-chain contributor set): O(depth) hashes per insert, O(depth) memory for the
    root; leaves are kept too, so any member can be given a proof."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._zeros = zeros(depth)
        self._filled = list(self._zeros[:depth])  # the last full left subtree at each height
        self._leaves: list[int] = []
        self.root = self._zeros[depth]

    def __len__(self) -> int:
        return len(self._leaves)

    def insert(self, leaf: int) -> int:
        index = len(self._leaves)
        if index >= 2**self.depth:
            raise TreeFull(f"The tree of depth {self.depth} is full ({2**self.depth} leaves).")
        node, position = leaf, index
        for height in range(self.depth):
            if position % 2 == 0:
                self._filled[height] = node
                node = poseidon(node, self._zeros[height])
            else:
                node = poseidon(self._filled[height], node)
            position //= 2
        self._leaves.append(leaf)
        self.root = node
        return index

    def proof(self, index: int) -> MerkleProof:
        return MerkleTree(self._leaves, self.depth).proof(index)
