"""Search algorithms: the pure two-stage policy and its Ray Tune adapter."""
