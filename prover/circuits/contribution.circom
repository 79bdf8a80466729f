pragma circom 2.1.6;

// Proof of contribution: "I know the identity secret behind `identityCommitment`, and for each of `count`
// records a (digest, salt) whose leaves Poseidon(identityCommitment, digest, salt) form the batch tree with root
// `batchRoot`." The Datanet id and the reward recipient are public inputs, bound into the proof, so a proof
// cannot be replayed for another Datanet or redirected to another address. Raw records never enter.
//
// A batch holds up to 2^LEVELS records. Leaves are filled from the left; empty leaves are 0 (prover/merkle.py).

include "poseidon.circom";

template Contribution(LEVELS) {
    var CAPACITY = 1 << LEVELS;

    // Public inputs, in this order in the public signals.
    signal input batchRoot;
    signal input count;
    signal input identityCommitment;
    signal input datanetId;
    signal input recipient;

    // Private inputs.
    signal input secret;
    signal input digests[CAPACITY];
    signal input salts[CAPACITY];
    signal input filled[CAPACITY];  // 1 for a record, 0 for padding

    component identity = Poseidon(1);
    identity.inputs[0] <== secret;
    identity.out === identityCommitment;

    component leafHash[CAPACITY];
    signal leaves[CAPACITY];
    var total = 0;
    filled[0] === 1;  // a batch has at least one record
    for (var i = 0; i < CAPACITY; i++) {
        filled[i] * (filled[i] - 1) === 0;               // 0 or 1
        if (i > 0) {
            filled[i] * (1 - filled[i - 1]) === 0;       // records first, then padding
        }
        leafHash[i] = Poseidon(3);
        leafHash[i].inputs[0] <== identityCommitment;
        leafHash[i].inputs[1] <== digests[i];
        leafHash[i].inputs[2] <== salts[i];
        leaves[i] <== filled[i] * leafHash[i].out;
        total += filled[i];
    }
    count === total;

    component nodes[CAPACITY - 1];
    signal level[2 * CAPACITY - 1];
    for (var i = 0; i < CAPACITY; i++) {
        level[i] <== leaves[i];
    }
    for (var i = 0; i < CAPACITY - 1; i++) {
        nodes[i] = Poseidon(2);
        nodes[i].inputs[0] <== level[2 * i];
        nodes[i].inputs[1] <== level[2 * i + 1];
        level[CAPACITY + i] <== nodes[i].out;
    }
    level[2 * CAPACITY - 2] === batchRoot;

    // Bind the remaining public inputs into the constraint system.
    signal datanetSquare <== datanetId * datanetId;
    signal recipientSquare <== recipient * recipient;
}

component main {public [batchRoot, count, identityCommitment, datanetId, recipient]} = Contribution(4);
