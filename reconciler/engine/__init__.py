"""The reconcile engine: diff and plan (pure functions), apply (the only place that changes a
host, through a Provider), host locks and failpoints. Never imports a concrete provider."""
