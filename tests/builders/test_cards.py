"""Every built card as the Hub reads it: huggingface_hub parses it, its YAML carries the Hub's keys with this
build's true values and round-trips through DatasetCardData, and its body has the sections the Hub's template
asks for."""

import re

import pytest
import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from polymodal.builders.core.cards import card_data, render_card, size_category
from polymodal.builders.core.manifest import load_manifest
from polymodal.builders.symile_m3.builder import LANGUAGE_SETS, M3Config, SymileM3Builder
from polymodal.builders.vggsound_plus.builder import VggConfig
from polymodal.builders.vggsound_plus.card import card_metadata as vgg_metadata
from polymodal.builders.xor import XorBuilder, XorConfig

SECTIONS = ("## Dataset Description", "## Uses", "## Dataset Structure", "### Source Data",
            "### Personal and Sensitive Information", "## Bias, Risks, and Limitations", "## Citation")
CC0 = ("cc0-1.0", "cc0-1.0", "https://creativecommons.org/publicdomain/zero/1.0/")
EXPECTED = {  # fixture: (size category, licence, license_name, license_link, language, multilinguality, arXiv ids)
    "small_xor": ("1K<n<10K", *CC0, None, None, ["2411.01053"]),
    "small_xnor": ("n<1K", *CC0, None, None, ["2604.05834"]),
    "small_m3": ("n<1K", "cc-by-4.0", "cc-by-4.0", "https://creativecommons.org/licenses/by/4.0/",
                 ["el", "en", "hi", "ja", "uk"], "multilingual", ["2411.01053"]),
    "small_vgg": ("n<1K", "other", "vggsound-youtube", "https://www.robots.ox.ac.uk/~vgg/data/vggsound/",
                  ["en"], "monolingual", ["2504.21375", "2004.14368"]),
}


@pytest.mark.parametrize("dataset", EXPECTED)
def test_a_built_card_carries_the_hubs_keys_with_true_values(dataset, request):
    folder = request.getfixturevalue(dataset)
    manifest = load_manifest(folder)
    card = DatasetCard.load(folder / "README.md")
    data = card.data.to_dict()
    size, license, name, link, language, multilinguality, arxiv = EXPECTED[dataset]

    assert data["size_categories"] == [size]
    assert (data["license"], data["license_name"], data["license_link"]) == (license, name, link)
    assert data.get("language") == language and data.get("multilinguality") == multilinguality
    assert data["pretty_name"] and data["task_categories"] and data["source_datasets"]

    # One config whose files are exactly each split's shards, `val` under the Hub's name.
    (config,) = data["configs"]
    files = {entry["split"]: entry["path"] for entry in config["data_files"]}
    hub_names = {"validation" if split == "val" else split for split in manifest["splits"]}
    assert config["config_name"] == "default" and set(files) == hub_names
    for split, s in manifest["splits"].items():
        shards = sorted(folder.glob(files["validation" if split == "val" else split]))
        assert len(shards) == s["shards"] and all(p.parent.name == split for p in shards)

    # The columns are the members of every sample, the audio as bytes and the image as an image.
    features = {f["name"]: f for f in data["dataset_info"]["features"]}
    assert set(features) == {*manifest["fields"], "__key__", "__url__"}
    if "jpg" in features:
        assert features["jpg"]["dtype"] == "image" and features["flac"]["dtype"] == "binary"

    text = card.text
    assert all(re.search(rf"^{re.escape(heading)}$", text, re.M) for heading in SECTIONS)
    assert manifest["dataset_id"] in text and manifest["content_digest"] in text
    assert f"polymodal build {manifest['builder']} --out DIR" in text
    citation = text[text.index("## Citation"):]
    assert "```bibtex\n@" in citation and all(f"{{{n}}}" in citation for n in arxiv)
    assert "{{ " not in text and "{%" not in text  # every template field was filled


@pytest.mark.parametrize("dataset", EXPECTED)
def test_a_built_cards_yaml_round_trips_through_dataset_card_data(dataset, request):
    card_text = (request.getfixturevalue(dataset) / "README.md").read_text()
    front = yaml.safe_load(card_text.split("---\n")[1])
    data = DatasetCardData(**front)
    assert data.to_dict() == front
    assert DatasetCard(f"---\n{data.to_yaml()}\n---\n").data.to_dict() == front


def test_size_categories_are_the_hubs_bins():
    assert [size_category(n) for n in (0, 999, 1_000, 99_999, 100_000, 10_999_999, 10**9)] == [
        "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "10M<n<100M", "1B<n<10B"]


def _m3_manifest(config: M3Config) -> dict:
    """What a build of `config` would record, without its sources: the card needs only these."""
    info = {"language_set": "M3-10", "classes_named_in_every_language": 167, "classes_used": 167,
            "audio_pool": {lang: 100 for lang in config.languages}, "names_shared_by_classes": 0,
            "words_shared_by_languages": 0}
    return {"dataset_id": "0" * 16, "content_digest": "1" * 16, "builder": "symile-m3", "builder_version": "2.0.0",
            "polymodal_version": "0", "seed": 0, "config": {}, "info": info,
            "splits": {"train": {"samples": 10_000_000, "shards": 1, "failed": 0},
                       "val": {"samples": 500_000, "shards": 1, "failed": 0},
                       "test": {"samples": 500_000, "shards": 1, "failed": 0}}}


def test_the_papers_symile_m3_sources_give_imagenets_terms_every_language_and_babels_citation():
    config = M3Config(languages=LANGUAGE_SETS["M3-10"], images="imagenet:/data/ilsvrc", audio="commonvoice:/data/cv")
    card = DatasetCard(render_card(SymileM3Builder(config), _m3_manifest(config)))
    data = card.data.to_dict()
    assert (data["license"], data["license_link"]) == ("other", "https://image-net.org/download.php")
    assert data["language"] == ["ar", "el", "en", "hi", "ja", "ko", "te", "th", "uk", "zh"]  # zh-CN as ISO 639
    assert data["size_categories"] == ["10M<n<100M"]
    assert "extended|ILSVRC/imagenet-1k" in data["source_datasets"]
    assert "Babel-ImageNet (Geigle" in card.text and "@inproceedings{geigle-etal-2024-babel" in card.text
    assert "Common Voice recordings of volunteers' voices" in card.text


BABEL = "https://github.com/gregor-ge/Babel-ImageNet"


@pytest.mark.parametrize("images, names, audio, license, link", [
    ("digits", "digits", "commonvoice:/cv", "cc-by-4.0", "https://creativecommons.org/licenses/by/4.0/"),  # > CC0
    ("digits", "babel", "espeak", "other", BABEL),
    ("imagefolder:/x", "babel", "espeak", "other", BABEL),  # the first `other` source that publishes its terms
    ("imagenet:/x", "babel", "espeak", "other", "https://image-net.org/download.php"),
    ("imagefolder:/x", "digits", "espeak", "other", None),  # a user's folder: no link to give
])
def test_a_symile_m3_build_carries_its_most_binding_sources_licence(images, names, audio, license, link):
    config = M3Config(images=images, names=names, audio=audio)
    data = card_data(SymileM3Builder(config), _m3_manifest(config)).to_dict()
    assert (data["license"], data.get("license_link")) == (license, link)
    assert data["license_name"] == (license if license != "other" else "symile-m3-source-terms")


def test_a_captioning_models_language_is_not_claimed():
    assert vgg_metadata(VggConfig(index="index.csv"), {})["language"] == ["en"]  # the English templates
    assert "language" not in vgg_metadata(VggConfig(index="index.csv", captioner="hf:some/model"), {})


def test_a_template_value_that_no_one_gives_is_refused(small_xor, monkeypatch):
    """Jinja would print an unknown name as nothing; the card refuses it as string.Template did."""
    monkeypatch.setattr(XorBuilder, "card_fields", lambda self, manifest: {})
    with pytest.raises(KeyError, match="'bayes', 'chance', 'dim'"):
        render_card(XorBuilder(XorConfig()), load_manifest(small_xor))
