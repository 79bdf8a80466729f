"""Poseidon Merkle trees: proofs verify, any change fails, both trees agree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prover.errors import NotInTree, TreeFull
from prover.merkle import IncrementalTree, MerkleProof, MerkleTree, verify, zeros
from prover.poseidon import FIELD, poseidon

DEPTH = 4
field = st.integers(min_value=0, max_value=FIELD - 1)
leaf_lists = st.lists(field, min_size=1, max_size=2**DEPTH)


@settings(max_examples=40, deadline=None)
@given(leaf_lists, st.data())
def test_every_inclusion_proof_verifies(leaves: list[int], data: st.DataObject) -> None:
    tree = MerkleTree(leaves, DEPTH)
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    proof = tree.proof(index)
    assert proof.leaf == leaves[index]
    assert verify(tree.root, proof)


@settings(max_examples=40, deadline=None)
@given(leaf_lists, st.data())
def test_any_changed_leaf_sibling_or_index_fails(leaves: list[int], data: st.DataObject) -> None:
    tree = MerkleTree(leaves, DEPTH)
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    proof = tree.proof(index)
    delta = data.draw(st.integers(min_value=1, max_value=FIELD - 1))
    assert not verify(tree.root, MerkleProof((proof.leaf + delta) % FIELD, index, proof.siblings))
    level = data.draw(st.integers(min_value=0, max_value=DEPTH - 1))
    siblings = list(proof.siblings)
    siblings[level] = (siblings[level] + delta) % FIELD
    assert not verify(tree.root, MerkleProof(proof.leaf, index, tuple(siblings)))
    assert not verify(tree.root, MerkleProof(proof.leaf, 2**DEPTH, proof.siblings))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=FIELD - 1), min_size=1, max_size=2**DEPTH, unique=True), st.data())
def test_a_proof_moved_to_another_index_fails(leaves: list[int], data: st.DataObject) -> None:
    # Distinct non-zero leaves: no two subtrees hash alike, so no other position can reproduce the root.
    tree = MerkleTree(leaves, DEPTH)
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    other = data.draw(st.integers(min_value=0, max_value=2**DEPTH - 1).filter(lambda i: i != index))
    proof = tree.proof(index)
    assert not verify(tree.root, MerkleProof(proof.leaf, other, proof.siblings))


@settings(max_examples=25, deadline=None)
@given(st.lists(field, min_size=0, max_size=2**DEPTH))
def test_incremental_tree_agrees_with_the_full_tree(leaves: list[int]) -> None:
    incremental = IncrementalTree(DEPTH)
    for leaf in leaves:
        incremental.insert(leaf)
        assert incremental.root == MerkleTree(incremental._leaves, DEPTH).root
    assert incremental.root == MerkleTree(leaves, DEPTH).root
    for index in range(len(leaves)):
        assert verify(incremental.root, incremental.proof(index))


def test_empty_tree_roots_are_the_zero_chain() -> None:
    assert zeros(2) == (0, poseidon(0, 0), poseidon(poseidon(0, 0), poseidon(0, 0)))
    assert MerkleTree([], 2).root == zeros(2)[2]
    assert IncrementalTree(2).root == zeros(2)[2]
    assert MerkleTree([1, 2], 1).root == poseidon(1, 2)


def test_limits() -> None:
    tree = IncrementalTree(1)
    tree.insert(1)
    tree.insert(2)
    with pytest.raises(TreeFull):
        tree.insert(3)
    with pytest.raises(TreeFull):
        MerkleTree([1, 2, 3], 1)
    with pytest.raises(NotInTree):
        MerkleTree([1], 2).proof(1)
