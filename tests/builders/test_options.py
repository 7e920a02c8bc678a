"""Builder options are declared once: the flags, the configs they give and the card's command all come from the
config dataclass, so the command a card prints rebuilds exactly the config that built the data."""

import argparse
import dataclasses
import shlex
from pathlib import Path

import pytest

from polymodal.builders import BUILDERS
from polymodal.builders.core.options import command_line, flag

# A config per builder with every identity option away from its default, and a runtime one set.
UNUSUAL = {
    "xor": dict(dim=3, p_hat=0.25, train=70, val=9, test=11, test_draws=2, seed=4, shard_size=13),
    "xnor": dict(bits=3, dim=11, signal_scale=0.5, distractor_std=2.0, corruption_p=0.25, b_share=0.3,
                 corruption="gaussian", samples=70, seed=4, shard_size=13),
    "symile-m3": dict(languages=("en", "el", "uk"), images="imagenet:/data/ilsvrc", audio="commonvoice:/cv",
                      names="translations:/t t.json", train=5, val=6, test=7, missing_p=0.3, seed=2, shard_size=3),
    "vggsound-plus": dict(index="/my index.csv", index_split="train", splits=("test",),
                          classes=("dog barking", "bird chirping, tweeting"), limit=4, source="dir:/clips x",
                          format="best", frame_size=0, captioner="hf:some/model", seed=9, shard_size=2,
                          proxy="socks5://127.0.0.1:1"),
}


def parse(name: str, argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(exit_on_error=False)
    BUILDERS[name].add_arguments(parser)
    return BUILDERS[name].configs_from_args(parser.parse_args(argv))


def test_every_builder_is_covered():
    assert set(UNUSUAL) == set(BUILDERS)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_the_command_rebuilds_the_same_config_and_the_cards_names_no_local_path(name, tmp_path):
    cls = BUILDERS[name]
    values = dict(UNUSUAL[name])
    for field in ("index", "names"):  # the files these name must exist: their content enters the id
        if field in values:
            kind, _, path = values[field].rpartition(":")
            local = tmp_path / Path(path).name
            local.write_text("ytid,0,dog barking,test\n")
            values[field] = f"{kind}:{local}" if kind else str(local)
    config = cls.Config(**values)
    words = shlex.split(command_line(config, f"polymodal build {name}", portable=False))
    assert words[:5] == ["polymodal", "build", name, "--out", "DIR"]
    (rebuilt,) = parse(name, words[5:]).values()
    identity = {f.name for f in dataclasses.fields(config) if not f.metadata.get("runtime")}
    assert {k: getattr(rebuilt, k) for k in identity} == {k: getattr(config, k) for k in identity}
    assert cls(rebuilt).dataset_id() == cls(config).dataset_id()
    card = cls(config).command()
    assert "proxy" not in card  # how a build ran is not part of what it built
    assert str(tmp_path) not in card and "/data/ilsvrc" not in card and "/clips x" not in card and "/cv" not in card


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_config_field_is_a_flag_with_help(name):
    cls = BUILDERS[name]
    parser = argparse.ArgumentParser()
    cls.add_arguments(parser)
    flags = {option: action for action in parser._actions for option in action.option_strings}
    for f in dataclasses.fields(cls.Config):
        assert flag(f.name) in flags, f.name
        assert flags[flag(f.name)].help, f.name


def test_defaults_come_from_the_dataclass():
    (xor,) = parse("xor", []).values()
    assert xor == BUILDERS["xor"].Config()


def test_a_preset_sets_its_fields_and_a_field_given_alone_wins():
    (m3,) = parse("symile-m3", ["--size", "xs", "--test", "7"]).values()
    assert (m3.train, m3.val, m3.test) == (500_000, 25_000, 7)
    (plain,) = parse("symile-m3", ["--train", "20"]).values()
    assert (plain.train, plain.val, plain.test) == (20, BUILDERS["symile-m3"].Config().val, BUILDERS["symile-m3"].Config().test)


def test_a_shorthand_fills_its_template():
    (vgg,) = parse("vggsound-plus", ["--index", "i.csv", "--media-dir", "/c"]).values()
    assert vgg.source == "dir:/c"
    (m3,) = parse("symile-m3", ["--translations", "t.json"]).values()
    assert m3.names == "translations:t.json"


def test_a_sweep_gives_one_config_per_value_in_its_own_folder():
    configs = parse("xor", ["--p-hat", "0,0.5,...,1", "--dim", "2"])
    assert list(configs) == ["p_hat=0", "p_hat=0.5", "p_hat=1"]
    assert [c.p_hat for c in configs.values()] == [0.0, 0.5, 1.0] and {c.dim for c in configs.values()} == {2}


def test_a_bad_value_names_the_flag(capsys):
    with pytest.raises(SystemExit):
        argparse_parse("xor", ["--dim", "three"])
    assert "--dim" in capsys.readouterr().err


def argparse_parse(name, argv):
    parser = argparse.ArgumentParser()
    BUILDERS[name].add_arguments(parser)
    return parser.parse_args(argv)
