"""The control loop: sources of work (files, git, timer, host events), a keyed work queue with
backoff, the level-triggered reconcile loop, drift policy, and persisted status.

An event only says "look again"; the loop always re-reads manifests and re-observes the host.
Never builds XML or talks to libvirt directly: it drives the engine through a Provider.
"""
