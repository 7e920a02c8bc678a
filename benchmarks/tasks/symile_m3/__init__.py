"""The Symile-M3 task and its featurizers."""
