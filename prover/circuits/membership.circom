pragma circom 2.1.6;

// Semaphore-style membership: "my identity commitment Poseidon(secret) is a leaf of the contributor tree with
// root `root` (depth DEPTH), and `nullifier` = Poseidon(secret, scope)". One nullifier per scope (a reward
// epoch) makes a second claim in the same scope detectable without revealing who claimed. The recipient is
// bound so a proof cannot be redirected.

include "poseidon.circom";

template Membership(DEPTH) {
    // Public inputs, in this order in the public signals.
    signal input root;
    signal input nullifier;
    signal input scope;
    signal input recipient;

    // Private inputs.
    signal input secret;
    signal input pathIndices[DEPTH];  // 0: the node is a left child, 1: a right child
    signal input siblings[DEPTH];

    component commitment = Poseidon(1);
    commitment.inputs[0] <== secret;

    component hashes[DEPTH];
    signal node[DEPTH + 1];
    signal left[DEPTH];
    signal right[DEPTH];
    node[0] <== commitment.out;
    for (var i = 0; i < DEPTH; i++) {
        pathIndices[i] * (pathIndices[i] - 1) === 0;
        left[i] <== node[i] + pathIndices[i] * (siblings[i] - node[i]);
        right[i] <== siblings[i] + pathIndices[i] * (node[i] - siblings[i]);
        hashes[i] = Poseidon(2);
        hashes[i].inputs[0] <== left[i];
        hashes[i].inputs[1] <== right[i];
        node[i + 1] <== hashes[i].out;
    }
    node[DEPTH] === root;

    component nullifierHash = Poseidon(2);
    nullifierHash.inputs[0] <== secret;
    nullifierHash.inputs[1] <== scope;
    nullifierHash.out === nullifier;

    signal recipientSquare <== recipient * recipient;
}

component main {public [root, nullifier, scope, recipient]} = Membership(20);
