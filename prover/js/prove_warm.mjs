// snarkjs with its keys kept in memory (as a long-running node would): prove the same input N times.
// Usage: node prove_warm.mjs circuit.wasm circuit.zkey input.json N   -> prints one JSON line of timings (ms)
import { readFileSync } from "node:fs";
import * as snarkjs from "snarkjs";

const [wasmPath, zkeyPath, inputPath, n] = process.argv.slice(2);
const wasm = new Uint8Array(readFileSync(wasmPath));
const zkey = new Uint8Array(readFileSync(zkeyPath));
const input = JSON.parse(readFileSync(inputPath, "utf8"));
const times = [];
for (let i = 0; i < Number(n); i++) {
  const start = performance.now();
  await snarkjs.groth16.fullProve(input, wasm, zkey);
  times.push(performance.now() - start);
}
console.log(JSON.stringify({ times }));
process.exit(0);
