"""Search algorithms: the two-stage rules and policy (pure, typed settings), their Ray Tune adapter, the
rebuild from Ray's trials, and the strategies it is compared with."""
