"""Orders domain: aggregates, events and value objects (arriving with the Orders service issue)."""
