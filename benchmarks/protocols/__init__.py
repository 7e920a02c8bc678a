"""Scoring pieces that tasks share: chunked retrieval and the modality-gap measures."""
