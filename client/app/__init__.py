"""The application layer: plain, synchronous services that take and return plain values (JSON-ready dicts) and
know nothing of RPC, argparse or terminals. The node's control API calls them (client/node/handlers.py, jobs.py);
so do the commands that run without a node (`datanet demo`, reads that open the vault directly).

- records.py: Datanets and their records in the vault: create, list, count, show, import, delete, members,
  batches.
- contribution.py: proving a Datanet's pending records into batches.
- chain.py: one chain session (the embedded devnet or an RPC endpoint) and what goes through it: status, fund,
  deploy, reset, on-chain Datanets, create, join, leave, allow, submit, register an adapter.
- training.py: training settings and a LoRA run on a Datanet, adapters.
"""
