"""Everything that is not UI or storage: config, identity, records, importers, the CLI (and later p2p, chain,
training, attribution)."""
