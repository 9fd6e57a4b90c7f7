"""Orders application layer: commands, queries and their handlers."""
