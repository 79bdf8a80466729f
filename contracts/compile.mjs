// Compiles the Solidity sources with the pinned solcjs and writes the artefacts the client loads at run time
// (client/chain/artifacts/contracts.json): ABI, creation and runtime bytecode, the exact compiler settings and
// every source's sha256 (OpenZeppelin's, from the pinned @openzeppelin/contracts, included). circomlibjs generates the Poseidon contract's bytecode (it has no Solidity source).
// Deterministic: tests/test_contracts.py runs this again and compares the output byte for byte.
//
//   node compile.mjs [OUT]      (from contracts/, after `npm ci`)
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";
import { poseidonContract } from "circomlibjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const out = process.argv[2] ? resolve(process.argv[2]) : join(root, "client", "chain", "artifacts", "contracts.json");

// Source unit name -> the contract names the client knows them by.
const SOURCES = {
  "contracts/src/DatanetRegistry.sol": { DatanetRegistry: "DatanetRegistry" },
  "contracts/src/ContributionLedger.sol": { ContributionLedger: "ContributionLedger" },
  "contracts/src/Governance.sol": { DatanetToken: "DatanetToken", DatanetGovernor: "DatanetGovernor" },
  "contracts/src/MemberPolls.sol": { MemberPolls: "MemberPolls" },
  "@openzeppelin/contracts/governance/TimelockController.sol": { TimelockController: "TimelockController" },
  "contracts/src/ProofChecks.sol": {
    ContributionProofCheck: "ContributionProofCheck",
    MembershipProofCheck: "MembershipProofCheck",
  },
  "prover/artifacts/contribution/contribution_verifier.sol": { Groth16Verifier: "ContributionVerifier" },
  "prover/artifacts/membership/membership_verifier.sol": { Groth16Verifier: "MembershipVerifier" },
};

const settings = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const sources = {};
const sourceHashes = {};
// "@openzeppelin/..." units come from the pinned package in contracts/node_modules; the rest from the repository.
const file = (unit) =>
  unit.startsWith("@openzeppelin/") ? join(here, "node_modules", unit) : join(root, unit);

for (const name of Object.keys(SOURCES)) {
  const content = readFileSync(file(name), "utf8");
  sources[name] = { content };
  sourceHashes[name] = createHash("sha256").update(content).digest("hex");
}

function findImports(path) {
  // Imports are relative to their file or name the package, so solc resolves them to unit names `file` knows.
  try {
    const contents = readFileSync(file(path), "utf8");
    sourceHashes[path] = createHash("sha256").update(contents).digest("hex");
    return { contents };
  } catch {
    return { error: `not found: ${path}` };
  }
}

const output = JSON.parse(
  solc.compile(JSON.stringify({ language: "Solidity", sources, settings }), { import: findImports }),
);
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) {
  // OpenZeppelin's own warnings (a future keyword) are theirs to fix; ours and every error are shown.
  if (e.severity === "error" || !e.sourceLocation?.file?.startsWith("@openzeppelin/")) console.error(e.formattedMessage);
}
if (errors.length) process.exit(1);

const contracts = {};
for (const [unit, names] of Object.entries(SOURCES)) {
  for (const [contract, alias] of Object.entries(names)) {
    const compiled = output.contracts[unit][contract];
    contracts[alias] = {
      source: unit,
      abi: compiled.abi,
      bytecode: "0x" + compiled.evm.bytecode.object,
      deployedBytecode: "0x" + compiled.evm.deployedBytecode.object,
    };
  }
}
contracts.PoseidonT3 = {
  source: "circomlibjs poseidon_gencontract createCode(2)",
  abi: poseidonContract.generateABI(2),
  bytecode: poseidonContract.createCode(2),
  deployedBytecode: null,
};

const artefact = {
  format: 1,
  compiler: `solc ${solc.version()}`,
  generator: "contracts/compile.mjs",
  settings,
  sources: Object.fromEntries(Object.entries(sourceHashes).sort(([a], [b]) => a.localeCompare(b))),
  contracts,
};
const tmp = `${out}.tmp`;
writeFileSync(tmp, JSON.stringify(artefact, null, 1) + "\n");
renameSync(tmp, out);
console.log(`wrote ${out} (${Object.keys(contracts).length} contracts, ${artefact.compiler})`);
