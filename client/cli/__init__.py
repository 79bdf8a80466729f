"""The `datanet` command line."""
