"""The VGG-sound+ task and its featurizer."""
