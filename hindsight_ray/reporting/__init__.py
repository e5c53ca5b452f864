"""Readers and loggers of a sweep's results: the tables and the summary, the report, the predictor, the
console's words, and the trackers (MLflow, W&B, TensorBoard)."""
