"""Parts every service shares: registry, settings, app factory, middleware, auth, metrics."""
