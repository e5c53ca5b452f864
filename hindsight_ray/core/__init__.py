"""Pure building blocks every layer shares: the user's one error type, which score is better, the
metrics, what a trial reports, every file name of an experiment, and where an experiment lives."""
