// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// The snarkjs verifiers return false, never revert, for a bad proof, and also when they run out of gas: a
/// caller (or a gas estimate) must treat false as failure. These wrappers revert instead, so that a call
/// succeeds only for a valid proof, `eth_estimateGas` finds the gas a valid proof needs, and the gas of the
/// proof check alone can be measured (bench/chain.py).

interface IVerifier5 {
    function verifyProof(uint256[2] calldata, uint256[2][2] calldata, uint256[2] calldata, uint256[5] calldata)
        external
        view
        returns (bool);
}

interface IVerifier4 {
    function verifyProof(uint256[2] calldata, uint256[2][2] calldata, uint256[2] calldata, uint256[4] calldata)
        external
        view
        returns (bool);
}

error InvalidProof();

/// @notice Checks a `contribution` proof: (batch root, count, identity commitment, Datanet id, recipient).
contract ContributionProofCheck {
    IVerifier5 public immutable verifier;

    constructor(IVerifier5 verifier_) {
        verifier = verifier_;
    }

    function check(uint256[8] calldata p, uint256[5] calldata publicSignals) external view returns (bool) {
        if (!verifier.verifyProof([p[0], p[1]], [[p[2], p[3]], [p[4], p[5]]], [p[6], p[7]], publicSignals)) {
            revert InvalidProof();
        }
        return true;
    }
}

/// @notice Checks a `membership` proof: (contributor root, nullifier, scope, recipient).
contract MembershipProofCheck {
    IVerifier4 public immutable verifier;

    constructor(IVerifier4 verifier_) {
        verifier = verifier_;
    }

    function check(uint256[8] calldata p, uint256[4] calldata publicSignals) external view returns (bool) {
        if (!verifier.verifyProof([p[0], p[1]], [[p[2], p[3]], [p[4], p[5]]], [p[6], p[7]], publicSignals)) {
            revert InvalidProof();
        }
        return true;
    }
}
