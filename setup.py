"""Install the repository's top-level folders as one import package, `polymodal`.

The folders stay at the top level (builders/, baselines/, benchmarks/, leaderboard/, data_cards/), but their
import names would clash with other projects on PyPI, so each is mapped into the namespace:
`polymodal.builders`, `polymodal.baselines`, ... Sub-packages are found automatically, so a new folder with an
`__init__.py` can never be left out of a wheel. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

LAYERS = ("builders", "baselines", "benchmarks", "leaderboard", "data_cards")

setup(
    packages=["polymodal", *(f"polymodal.{layer}{sub}" for layer in LAYERS
                              for sub in ["", *(f".{p}" for p in find_packages(layer))])],
    package_dir={"polymodal": "polymodal", **{f"polymodal.{layer}": layer for layer in LAYERS}},
    package_data={"": ["*.json", "*.md", "resources/*"]},
)
