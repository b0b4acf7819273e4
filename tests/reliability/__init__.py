"""The real recon command on the embedded host: convergence, ownership, crashes and errors."""
