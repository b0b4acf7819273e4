"""The pure engine: diff and plan against hand-built observations, no host."""
