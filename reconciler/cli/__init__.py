"""The command line: argument parsing and rendering (table / yaml / json), nothing else.

Data goes to stdout; diagnostics, logs and progress to stderr. Exit codes are a contract
(see README.md). No reconciling logic lives here.
"""
