"""Pure types: the manifest kinds, quantities, references, diagnostics, schemas, plans.

Owns the vocabulary every other layer speaks. Never does I/O and imports only pydantic.
"""
