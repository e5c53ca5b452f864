"""Driver code that talks to Ray: the plan, Ray's start and the cluster checks, the lock and the signals,
the runner (sweep and resume), the console's Tune callbacks, finalize, campaigns."""
