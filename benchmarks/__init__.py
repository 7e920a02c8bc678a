"""The benchmark harness: tasks (dataset + protocol + metrics), training, evaluation, result files."""
