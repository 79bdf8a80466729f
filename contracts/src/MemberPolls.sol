// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {DatanetRegistry} from "./DatanetRegistry.sol";
import {ContributionLedger} from "./ContributionLedger.sol";

/// The snarkjs Groth16 verifier of the `membership` circuit (prover/artifacts/membership).
interface IMembershipVerifier {
    function verifyProof(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[4] calldata publicSignals
    ) external view returns (bool);
}

/// @title Anonymous one-member-one-vote polls of a Datanet.
/// @notice A vote is a `membership` proof (prover/circuits/membership.circom) that the voter's identity
/// commitment is a leaf of the Datanet's contributor tree (any root the ledger has had), with public signals
///   (root, nullifier = Poseidon(secret, scope), scope = this poll's scope, recipient = this vote's signal).
/// The scope is bound to the chain, this contract and the poll, so the nullifier allows one vote per member per
/// poll and is unlinkable across polls; the signal binds the option, so a vote cannot be changed in flight. The
/// sender is not part of the proof: anyone may carry a vote (the client sends it from a fresh address).
contract MemberPolls {
    uint256 internal constant SNARK_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 public constant MAX_OPTIONS = 16;

    struct Poll {
        uint64 datanetId;
        uint64 deadline; // votes are accepted up to and including this timestamp
        address creator;
        uint32 votes;
        string question;
        string[] options;
    }

    DatanetRegistry public immutable registry;
    ContributionLedger public immutable ledger;
    IMembershipVerifier public immutable verifier;
    uint256 public pollCount;
    mapping(uint256 => Poll) private _polls;
    mapping(uint256 => mapping(uint256 => uint32)) public tally; // poll -> option -> votes
    mapping(uint256 => mapping(uint256 => bool)) public nullifierUsed; // poll -> nullifier -> voted

    event PollCreated(
        uint256 indexed pollId, uint256 indexed datanetId, address indexed creator, string question, uint64 deadline
    );
    event Voted(uint256 indexed pollId, uint256 option, uint256 nullifier);

    error UnknownPoll(uint256 pollId);
    error NotMember(uint256 id, address account);
    error BadOptions(uint256 count);
    error DeadlinePassed(uint256 deadline);
    error PollClosed(uint256 pollId, uint256 deadline);
    error BadOption(uint256 pollId, uint256 option);
    error UnknownRoot(uint256 pollId, uint256 root);
    error AlreadyVoted(uint256 pollId);
    error InvalidProof();

    constructor(DatanetRegistry registry_, ContributionLedger ledger_, IMembershipVerifier verifier_) {
        registry = registry_;
        ledger = ledger_;
        verifier = verifier_;
    }

    /// @notice A member of the Datanet opens a poll; it closes after `deadline` (a timestamp).
    function createPoll(uint256 datanetId, string calldata question, string[] calldata options, uint64 deadline)
        external
        returns (uint256 pollId)
    {
        if (!registry.isMember(datanetId, msg.sender)) revert NotMember(datanetId, msg.sender);
        if (options.length < 2 || options.length > MAX_OPTIONS) revert BadOptions(options.length);
        if (deadline <= block.timestamp) revert DeadlinePassed(deadline);
        pollId = ++pollCount;
        Poll storage p = _polls[pollId];
        p.datanetId = uint64(datanetId);
        p.deadline = deadline;
        p.creator = msg.sender;
        p.question = question;
        for (uint256 i = 0; i < options.length; ++i) {
            p.options.push(options[i]);
        }
        emit PollCreated(pollId, datanetId, msg.sender, question, deadline);
    }

    /// @notice One anonymous vote: `option` of poll `pollId`, proven against contributor root `root`.
    function vote(uint256 pollId, uint256 option, uint256 root, uint256 nullifier, uint256[8] calldata proof)
        external
    {
        Poll storage p = _poll(pollId);
        if (block.timestamp > p.deadline) revert PollClosed(pollId, p.deadline);
        if (option >= p.options.length) revert BadOption(pollId, option);
        if (!ledger.isKnownRoot(p.datanetId, root)) revert UnknownRoot(pollId, root);
        if (nullifierUsed[pollId][nullifier]) revert AlreadyVoted(pollId);
        bool ok = verifier.verifyProof(
            [proof[0], proof[1]],
            [[proof[2], proof[3]], [proof[4], proof[5]]],
            [proof[6], proof[7]],
            [root, nullifier, scope(pollId), signal(pollId, option)]
        );
        if (!ok) revert InvalidProof();
        nullifierUsed[pollId][nullifier] = true;
        tally[pollId][option] += 1;
        p.votes += 1;
        emit Voted(pollId, option, nullifier);
    }

    function poll(uint256 pollId)
        external
        view
        returns (Poll memory info, uint32[] memory counts)
    {
        info = _poll(pollId);
        counts = new uint32[](info.options.length);
        for (uint256 i = 0; i < counts.length; ++i) {
            counts[i] = tally[pollId][i];
        }
    }

    /// @notice The membership scope of a poll: its nullifiers are Poseidon(secret, scope).
    function scope(uint256 pollId) public view returns (uint256) {
        return uint256(keccak256(abi.encode("datanet.poll", block.chainid, address(this), pollId))) % SNARK_FIELD;
    }

    /// @notice The public signal that binds a vote's option.
    function signal(uint256 pollId, uint256 option) public pure returns (uint256) {
        return uint256(keccak256(abi.encode("datanet.vote", pollId, option))) % SNARK_FIELD;
    }

    function _poll(uint256 pollId) private view returns (Poll storage p) {
        if (pollId == 0 || pollId > pollCount) revert UnknownPoll(pollId);
        p = _polls[pollId];
    }
}
