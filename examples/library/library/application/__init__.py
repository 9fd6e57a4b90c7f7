"""The library's application layer: commands and their handlers, queries and theirs."""
