"""The encrypted vault: SQLCipher shards, the key hierarchy, and where the master key is kept."""
