"""Readers and loggers of a sweep's results: MLflow tracking (the report, tables and predictor move here)."""
