"""The zkSNARK layer (Poseidon, Merkle trees, circuits, Groth16). Not built yet: the Prover issue fills this
package (see ARCHITECTURE.md)."""
