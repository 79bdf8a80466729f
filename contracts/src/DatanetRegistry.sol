// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Datanets: who owns each one, what its records look like, and who may contribute to it.
/// @notice Ids start at 1. A private Datanet admits only accounts its owner allow-lists (a hospital consortium)
/// or that deposit its join stake; a public one may also be open to anyone. Validators, an allow-listed role
/// managed by the admin, may flag contributed batches in the ContributionLedger. The protocol's governance (the
/// timelock of DatanetGovernor) sets each Datanet's priority.
contract DatanetRegistry {
    enum Visibility {
        Public,
        Private
    }

    enum JoinPolicy {
        Open,
        AllowList,
        Stake
    }

    struct Datanet {
        address owner;
        Visibility visibility;
        JoinPolicy policy;
        uint64 createdAt;
        bytes32 schemaHash;
        uint128 joinStake; // wei a member deposits to join a Stake-policy Datanet (refunded on leave)
        uint128 batchStake; // least wei staked with each submitted batch
        uint32 memberCount;
        string name;
    }

    address public immutable admin;
    address public immutable governance;
    uint256 public datanetCount;
    mapping(uint256 => Datanet) private _datanets;
    mapping(bytes32 => uint256) public idByName;
    mapping(uint256 => mapping(address => bool)) public isMember;
    mapping(uint256 => mapping(address => bool)) public isAllowed;
    mapping(uint256 => mapping(address => uint256)) public deposits;
    mapping(address => bool) public isValidator;
    mapping(uint256 => uint32) public priority; // set by governance; 0 is the default

    event DatanetCreated(
        uint256 indexed id,
        address indexed owner,
        string name,
        bytes32 schemaHash,
        Visibility visibility,
        JoinPolicy policy,
        uint128 joinStake,
        uint128 batchStake
    );
    event MemberJoined(uint256 indexed id, address indexed member, uint256 deposit);
    event MemberLeft(uint256 indexed id, address indexed member, uint256 refund);
    event AllowListChanged(uint256 indexed id, address indexed account, bool allowed);
    event ValidatorChanged(address indexed account, bool enabled);
    event PriorityChanged(uint256 indexed id, uint32 priority);

    error EmptyName();
    error NameTaken(uint256 id);
    error PrivateNeedsPolicy();
    error UnknownDatanet(uint256 id);
    error NotOwner(uint256 id);
    error NotAdmin();
    error NotAllowed(uint256 id, address account);
    error AlreadyMember(uint256 id);
    error NotMember(uint256 id, address account);
    error WrongStake(uint256 required, uint256 sent);
    error TransferFailed();
    error NotGovernance();

    constructor(address governance_) {
        admin = msg.sender;
        governance = governance_;
        isValidator[msg.sender] = true;
        emit ValidatorChanged(msg.sender, true);
    }

    modifier exists(uint256 id) {
        if (id == 0 || id > datanetCount) revert UnknownDatanet(id);
        _;
    }

    modifier onlyOwner(uint256 id) {
        if (_datanets[id].owner != msg.sender) revert NotOwner(id);
        _;
    }

    /// @notice Create a Datanet; its creator owns it and is its first member.
    function create(
        string calldata name,
        bytes32 schemaHash,
        Visibility visibility,
        JoinPolicy policy,
        uint128 joinStake,
        uint128 batchStake
    ) external returns (uint256 id) {
        if (bytes(name).length == 0) revert EmptyName();
        bytes32 key = keccak256(bytes(name));
        if (idByName[key] != 0) revert NameTaken(idByName[key]);
        if (visibility == Visibility.Private && policy == JoinPolicy.Open) revert PrivateNeedsPolicy();
        id = ++datanetCount;
        idByName[key] = id;
        Datanet storage d = _datanets[id];
        d.owner = msg.sender;
        d.visibility = visibility;
        d.policy = policy;
        d.createdAt = uint64(block.timestamp);
        d.schemaHash = schemaHash;
        d.joinStake = joinStake;
        d.batchStake = batchStake;
        d.name = name;
        emit DatanetCreated(id, msg.sender, name, schemaHash, visibility, policy, joinStake, batchStake);
        isAllowed[id][msg.sender] = true;
        _admit(id, msg.sender, 0);
    }

    function datanet(uint256 id) external view exists(id) returns (Datanet memory) {
        return _datanets[id];
    }

    /// @notice Join a Datanet: free if open, allow-listed accounts only, or with exactly its join stake.
    function join(uint256 id) external payable exists(id) {
        Datanet storage d = _datanets[id];
        if (isMember[id][msg.sender]) revert AlreadyMember(id);
        if (d.policy == JoinPolicy.AllowList && !isAllowed[id][msg.sender]) revert NotAllowed(id, msg.sender);
        uint256 required = d.policy == JoinPolicy.Stake ? d.joinStake : 0;
        if (msg.value != required) revert WrongStake(required, msg.value);
        _admit(id, msg.sender, msg.value);
    }

    /// @notice Leave a Datanet; a join deposit is refunded.
    function leaveDatanet(uint256 id) external exists(id) {
        if (!isMember[id][msg.sender]) revert NotMember(id, msg.sender);
        _remove(id, msg.sender);
    }

    /// @notice The owner adds or removes an account; removing a member also ends its membership.
    function setAllowed(uint256 id, address account, bool allowed) external exists(id) onlyOwner(id) {
        isAllowed[id][account] = allowed;
        emit AllowListChanged(id, account, allowed);
        if (!allowed && isMember[id][account] && account != _datanets[id].owner) _remove(id, account);
    }

    function setValidator(address account, bool enabled) external {
        if (msg.sender != admin) revert NotAdmin();
        isValidator[account] = enabled;
        emit ValidatorChanged(account, enabled);
    }

    /// @notice Governance: a Datanet's priority (which Datanets the network favours).
    function setPriority(uint256 id, uint32 value) external exists(id) {
        if (msg.sender != governance) revert NotGovernance();
        priority[id] = value;
        emit PriorityChanged(id, value);
    }

    /// @notice What the ledger needs to accept a batch, in one call.
    function submissionTerms(uint256 id, address account)
        external
        view
        exists(id)
        returns (bool member, uint128 batchStake)
    {
        return (isMember[id][account], _datanets[id].batchStake);
    }

    function _admit(uint256 id, address account, uint256 deposit) private {
        isMember[id][account] = true;
        deposits[id][account] = deposit;
        _datanets[id].memberCount += 1;
        emit MemberJoined(id, account, deposit);
    }

    function _remove(uint256 id, address account) private {
        uint256 refund = deposits[id][account];
        isMember[id][account] = false;
        deposits[id][account] = 0;
        _datanets[id].memberCount -= 1;
        emit MemberLeft(id, account, refund);
        if (refund > 0) {
            (bool ok,) = account.call{value: refund}("");
            if (!ok) revert TransferFailed();
        }
    }
}
