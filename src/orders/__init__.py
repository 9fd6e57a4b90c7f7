"""Orders: the reference service built on cqrskit (under construction: see the README)."""
