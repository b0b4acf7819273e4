"""Reading manifests: strict YAML with positions, validation, cross-document checks, the graph.

Owns everything between bytes on disk and validated Resources. Never talks to a host.
"""
