// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {DatanetRegistry} from "./DatanetRegistry.sol";

/// The snarkjs Groth16 verifier of the `contribution` circuit (prover/artifacts/contribution).
interface IContributionVerifier {
    function verifyProof(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[5] calldata publicSignals
    ) external view returns (bool);
}

/// circomlib's Poseidon with two inputs, as circomlibjs generates it.
interface IPoseidonT3 {
    function poseidon(uint256[2] memory inputs) external pure returns (uint256);
}

/// @title The contribution ledger: proven batches with their stake, each Datanet's contributor tree, and adapters.
/// @notice `submitBatch` registers a batch root only if its `contribution` proof verifies in the same
/// transaction. The proof's public signals are (batch root, count, identity commitment, Datanet id, sender),
/// so a proof cannot be replayed for another batch, Datanet or account; each root is accepted once.
/// An account has one identity commitment per Datanet (its first batch's, or the one it enrols where the
/// Datanet's owner opened enrolment), so the contributor tree holds one leaf per member: one member, one vote in
/// the anonymous polls of MemberPolls. The protocol's governance (the timelock of DatanetGovernor) owns the batch
/// stake floor and the challenge period.
contract ContributionLedger {
    uint256 public constant TREE_DEPTH = 20;
    uint256 public constant BATCH_CAPACITY = 16;
    uint256 internal constant SNARK_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    struct Batch {
        address contributor;
        uint64 submittedAt;
        uint16 count;
        bool flagged;
        bool settled; // stake withdrawn or slashed
        uint64 datanetId;
        uint128 stake;
        uint64 challengeEnds; // the challenge period in force when the batch was submitted
    }

    struct Tree {
        uint256 root;
        uint32 size;
        uint256[TREE_DEPTH] filled;
    }

    struct Adapter {
        address owner;
        uint64 registeredAt;
        uint64 datanetId;
        bytes32 baseModel;
    }

    DatanetRegistry public immutable registry;
    IContributionVerifier public immutable verifier;
    IPoseidonT3 public immutable poseidon;
    address public immutable governance;
    uint256 public challengePeriod;
    uint128 public batchStakeFloor; // the least stake of any batch, whatever a Datanet asks
    uint256[TREE_DEPTH + 1] public zeros;
    uint256 public slashedTotal;

    mapping(uint256 => Batch) public batches;
    mapping(uint256 => Tree) private _trees;
    mapping(uint256 => mapping(uint256 => bool)) public isContributor;
    mapping(uint256 => mapping(uint256 => bool)) public isKnownRoot;
    mapping(bytes32 => Adapter) public adapters;
    mapping(uint256 => mapping(address => uint256)) public commitmentOf; // Datanet -> account -> its leaf
    mapping(uint256 => bool) public enrolmentOpen; // members may add their commitment without contributing

    event BatchSubmitted(
        uint256 indexed datanetId,
        uint256 indexed batchRoot,
        address indexed contributor,
        uint16 count,
        uint256 identityCommitment,
        uint128 stake
    );
    event ContributorAdded(uint256 indexed datanetId, uint256 identityCommitment, uint32 index, uint256 root);
    event BatchFlagged(uint256 indexed batchRoot, address indexed validator, uint128 slashed, bytes32 reason);
    event StakeWithdrawn(uint256 indexed batchRoot, address indexed contributor, uint128 stake);
    event BatchStakeFloorChanged(uint128 floor);
    event ChallengePeriodChanged(uint256 period);
    event EnrolmentChanged(uint256 indexed datanetId, bool open);
    event AdapterRegistered(
        bytes32 indexed contentHash,
        address indexed owner,
        uint256 indexed datanetId,
        bytes32 baseModel,
        uint256[] batchRoots
    );

    error UnknownDatanet(uint256 id);
    error NotMember(uint256 id, address account);
    error StakeTooLow(uint256 required, uint256 sent);
    error BadCount(uint256 count);
    error OutOfField();
    error BatchAlreadySubmitted(uint256 batchRoot);
    error InvalidProof();
    error TreeFull(uint256 id);
    error UnknownBatch(uint256 batchRoot);
    error NotValidator();
    error ChallengePeriodOver(uint256 batchRoot);
    error ChallengePeriodRunning(uint256 batchRoot, uint256 until);
    error BatchSettled(uint256 batchRoot);
    error NotContributor(uint256 batchRoot);
    error AdapterExists(bytes32 contentHash);
    error BatchNotInDatanet(uint256 batchRoot, uint256 datanetId);
    error TransferFailed();
    error NotGovernance();
    error BadPeriod(uint256 period);
    error CommitmentMismatch(uint256 datanetId, uint256 registered);
    error AlreadyEnrolled(uint256 datanetId);
    error EnrolmentClosed(uint256 datanetId);
    error CommitmentTaken(uint256 datanetId);
    error NotDatanetOwner(uint256 datanetId);

    uint256 public constant MAX_CHALLENGE_PERIOD = 90 days;

    constructor(
        DatanetRegistry registry_,
        IContributionVerifier verifier_,
        IPoseidonT3 poseidon_,
        uint256 period,
        address governance_
    ) {
        registry = registry_;
        verifier = verifier_;
        poseidon = poseidon_;
        governance = governance_;
        if (period > MAX_CHALLENGE_PERIOD) revert BadPeriod(period);
        challengePeriod = period;
        uint256 node = 0; // the empty leaf; zeros[h] is the root of an empty subtree of height h
        for (uint256 h = 0; h <= TREE_DEPTH; ++h) {
            zeros[h] = node;
            if (h < TREE_DEPTH) node = poseidon_.poseidon([node, node]);
        }
    }

    /// @notice Register a proven batch of `count` records with its stake (msg.value).
    /// @param proof the 256-byte Groth16 proof as eight words (a, b, c as the snarkjs verifier takes them)
    function submitBatch(
        uint256 datanetId,
        uint256 batchRoot,
        uint16 count,
        uint256 identityCommitment,
        uint256[8] calldata proof
    ) external payable {
        (bool member, uint128 required) = _terms(datanetId);
        if (!member) revert NotMember(datanetId, msg.sender);
        if (required < batchStakeFloor) required = batchStakeFloor;
        if (msg.value < required) revert StakeTooLow(required, msg.value);
        uint256 registered = commitmentOf[datanetId][msg.sender];
        if (registered != 0 && registered != identityCommitment) revert CommitmentMismatch(datanetId, registered);
        if (count == 0 || count > BATCH_CAPACITY) revert BadCount(count);
        if (batchRoot >= SNARK_FIELD || identityCommitment >= SNARK_FIELD) revert OutOfField();
        if (batches[batchRoot].contributor != address(0)) revert BatchAlreadySubmitted(batchRoot);
        bool ok = verifier.verifyProof(
            [proof[0], proof[1]],
            [[proof[2], proof[3]], [proof[4], proof[5]]],
            [proof[6], proof[7]],
            [batchRoot, count, identityCommitment, datanetId, uint256(uint160(msg.sender))]
        );
        if (!ok) revert InvalidProof();
        batches[batchRoot] = Batch({
            contributor: msg.sender,
            submittedAt: uint64(block.timestamp),
            count: count,
            flagged: false,
            settled: false,
            datanetId: uint64(datanetId),
            stake: uint128(msg.value),
            challengeEnds: uint64(block.timestamp + challengePeriod)
        });
        emit BatchSubmitted(datanetId, batchRoot, msg.sender, count, identityCommitment, uint128(msg.value));
        if (registered == 0) commitmentOf[datanetId][msg.sender] = identityCommitment;
        if (!isContributor[datanetId][identityCommitment]) _addContributor(datanetId, identityCommitment);
    }

    /// @notice A member adds its identity commitment to the contributor tree without contributing (so it can
    /// answer the Datanet's anonymous polls), where the Datanet's owner opened enrolment. Once per account.
    function enrol(uint256 datanetId, uint256 identityCommitment) external {
        (bool member,) = _terms(datanetId);
        if (!member) revert NotMember(datanetId, msg.sender);
        if (!enrolmentOpen[datanetId]) revert EnrolmentClosed(datanetId);
        if (commitmentOf[datanetId][msg.sender] != 0) revert AlreadyEnrolled(datanetId);
        if (identityCommitment == 0 || identityCommitment >= SNARK_FIELD) revert OutOfField();
        if (isContributor[datanetId][identityCommitment]) revert CommitmentTaken(datanetId);
        commitmentOf[datanetId][msg.sender] = identityCommitment;
        _addContributor(datanetId, identityCommitment);
    }

    /// @notice The Datanet's owner lets members enrol without contributing (or stops it).
    function setEnrolment(uint256 datanetId, bool open) external {
        if (registry.datanet(datanetId).owner != msg.sender) revert NotDatanetOwner(datanetId);
        enrolmentOpen[datanetId] = open;
        emit EnrolmentChanged(datanetId, open);
    }

    /// @notice Governance: the least stake of every batch from now on (a Datanet may ask for more).
    function setBatchStakeFloor(uint128 floor) external {
        if (msg.sender != governance) revert NotGovernance();
        batchStakeFloor = floor;
        emit BatchStakeFloorChanged(floor);
    }

    /// @notice Governance: the challenge period of batches submitted from now on.
    function setChallengePeriod(uint256 period) external {
        if (msg.sender != governance) revert NotGovernance();
        if (period > MAX_CHALLENGE_PERIOD) revert BadPeriod(period);
        challengePeriod = period;
        emit ChallengePeriodChanged(period);
    }

    /// @notice A validator flags a batch within its challenge period; its stake is slashed.
    function flagBatch(uint256 batchRoot, bytes32 reason) external {
        if (!registry.isValidator(msg.sender)) revert NotValidator();
        Batch storage b = _batch(batchRoot);
        if (b.settled) revert BatchSettled(batchRoot);
        if (block.timestamp >= b.challengeEnds) revert ChallengePeriodOver(batchRoot);
        b.flagged = true;
        b.settled = true;
        slashedTotal += b.stake;
        emit BatchFlagged(batchRoot, msg.sender, b.stake, reason);
    }

    /// @notice The contributor takes back an unflagged batch's stake once its challenge period is over.
    function withdrawStake(uint256 batchRoot) external {
        Batch storage b = _batch(batchRoot);
        if (b.contributor != msg.sender) revert NotContributor(batchRoot);
        if (b.settled) revert BatchSettled(batchRoot);
        uint256 until = b.challengeEnds;
        if (block.timestamp < until) revert ChallengePeriodRunning(batchRoot, until);
        b.settled = true;
        uint128 stake = b.stake;
        emit StakeWithdrawn(batchRoot, msg.sender, stake);
        (bool ok,) = msg.sender.call{value: stake}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice Record an adapter: its content hash, base model, Datanet and the batches it was trained on.
    function registerAdapter(
        bytes32 contentHash,
        bytes32 baseModel,
        uint256 datanetId,
        uint256[] calldata batchRoots
    ) external {
        if (adapters[contentHash].owner != address(0)) revert AdapterExists(contentHash);
        _terms(datanetId);
        for (uint256 i = 0; i < batchRoots.length; ++i) {
            Batch storage b = _batch(batchRoots[i]);
            if (b.datanetId != datanetId || b.flagged) revert BatchNotInDatanet(batchRoots[i], datanetId);
        }
        adapters[contentHash] = Adapter({
            owner: msg.sender,
            registeredAt: uint64(block.timestamp),
            datanetId: uint64(datanetId),
            baseModel: baseModel
        });
        emit AdapterRegistered(contentHash, msg.sender, datanetId, baseModel, batchRoots);
    }

    function contributorRoot(uint256 datanetId) external view returns (uint256 root, uint32 size) {
        Tree storage t = _trees[datanetId];
        return (t.size == 0 ? zeros[TREE_DEPTH] : t.root, t.size);
    }

    function _terms(uint256 datanetId) private view returns (bool member, uint128 batchStake) {
        // An unknown id reverts in the registry with the same UnknownDatanet error, passed through.
        return registry.submissionTerms(datanetId, msg.sender);
    }

    function _batch(uint256 batchRoot) private view returns (Batch storage b) {
        b = batches[batchRoot];
        if (b.contributor == address(0)) revert UnknownBatch(batchRoot);
    }

    function _addContributor(uint256 datanetId, uint256 commitment) private {
        Tree storage t = _trees[datanetId];
        uint32 index = t.size;
        if (index >= 2 ** TREE_DEPTH) revert TreeFull(datanetId);
        uint256 node = commitment;
        uint256 position = index;
        for (uint256 h = 0; h < TREE_DEPTH; ++h) {
            if (position & 1 == 0) {
                t.filled[h] = node;
                node = poseidon.poseidon([node, zeros[h]]);
            } else {
                node = poseidon.poseidon([t.filled[h], node]);
            }
            position >>= 1;
        }
        t.root = node;
        t.size = index + 1;
        isContributor[datanetId][commitment] = true;
        isKnownRoot[datanetId][node] = true;
        emit ContributorAdded(datanetId, commitment, index, node);
    }
}
