"""Providers: the edge where recon meets a host. base.py is the protocol the engine speaks;
concrete providers (libvirt/) are found through the `reconciler.providers` entry points and
are never imported by the engine."""
