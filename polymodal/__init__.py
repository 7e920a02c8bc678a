"""polymodal: datasets and benchmarks for contrastive learning over three or more modalities."""

__version__ = "0.1.0"
