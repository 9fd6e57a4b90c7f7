"""Orders queries and their handlers: they read only read models."""
