from dataclasses import dataclass, field
from typing import Literal

import pytest

from utils.config import bounded, from_mapping, load_config, parse_override
from utils.errors import ConfigError


@dataclass
class Inner:
    lr: float = bounded(1e-3, gt=0.0)
    layers: list[int] = bounded([2], ge=1)


@dataclass
class Outer:
    name: str
    mode: Literal["a", "b"] = "a"
    epochs: int = bounded(3, ge=1, le=100)
    tags: dict[str, float] = field(default_factory=dict)
    maybe: int | None = None
    inner: Inner = field(default_factory=Inner)


def write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_valid_config_loads_with_types_and_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "name: x\nepochs: 5\ninner: {lr: 1, layers: [3, 4]}\n"), Outer)
    assert cfg.epochs == 5 and cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)
    assert cfg.inner.layers == [3, 4] and cfg.mode == "a" and cfg.maybe is None


def test_unknown_key_names_file_key_and_value(tmp_path):
    path = write(tmp_path, "name: x\nepoch: 5\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: unknown key 'epoch' = 5; valid keys"):
        load_config(path, Outer)


def test_nested_unknown_key_uses_dotted_path(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'inner\.lrr' = 0\.1"):
        load_config(write(tmp_path, "name: x\ninner: {lrr: 0.1}\n"), Outer)


def test_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'epochs' = 'three': expected an integer"):
        load_config(write(tmp_path, "name: x\nepochs: three\n"), Outer)


def test_bool_is_not_an_integer(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'epochs' = True: expected an integer"):
        load_config(write(tmp_path, "name: x\nepochs: true\n"), Outer)


def test_out_of_range(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'epochs' = 0: must be >= 1"):
        load_config(write(tmp_path, "name: x\nepochs: 0\n"), Outer)


def test_out_of_range_in_list_and_nested(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'inner\.layers' = \[1, 0\]: must be >= 1"):
        load_config(write(tmp_path, "name: x\ninner: {layers: [1, 0]}\n"), Outer)
    with pytest.raises(ConfigError, match=r"key 'inner\.lr' = -1\.0: must be > 0"):
        load_config(write(tmp_path, "name: x\ninner: {lr: -1}\n"), Outer)


def test_literal_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'mode' = 'c': must be one of \['a', 'b'\]"):
        load_config(write(tmp_path, "name: x\nmode: c\n"), Outer)


def test_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match=r"required key 'name' is missing"):
        load_config(write(tmp_path, "epochs: 2\n"), Outer)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found"):
        load_config(tmp_path / "nope.yaml", Outer)
    with pytest.raises(ConfigError, match=r"not valid YAML"):
        load_config(write(tmp_path, "name: [unclosed\n"), Outer)


def test_null_rejected_for_required_type(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'name' = None: a value is required"):
        load_config(write(tmp_path, "name: null\n"), Outer)


def test_overrides_are_validated_too(tmp_path):
    path = write(tmp_path, "name: x\n")
    cfg = load_config(path, Outer, {"inner.lr": 0.5, "epochs": 7})
    assert (cfg.inner.lr, cfg.epochs) == (0.5, 7)
    with pytest.raises(ConfigError, match=r"key 'epochs' = 1000: must be <= 100"):
        load_config(path, Outer, {"epochs": 1000})


def test_parse_override():
    assert parse_override("trainer.max_epochs=3") == ("trainer.max_epochs", 3)
    assert parse_override("tags=[1, 2]") == ("tags", [1, 2])
    with pytest.raises(ConfigError, match=r"must look like key=value"):
        parse_override("oops")


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    """YAML 1.1 (PyYAML) reads ``1e-4`` as text; a researcher writes learning rates that way."""
    cfg = load_config(write(tmp_path, "name: x\ninner: {lr: 1e-4}\ntags: {a: -2E+3}\n"), Outer,
                      dict([parse_override("maybe=7")]))
    assert (cfg.inner.lr, cfg.tags, cfg.maybe) == (1e-4, {"a": -2000.0}, 7)
    assert parse_override("inner.lr=5e-3") == ("inner.lr", 5e-3)
    assert parse_override("name=1e") == ("name", "1e")  # not a number: stays text
    with pytest.raises(ConfigError, match=r"key 'inner.lr' = -1e-05: must be > 0.0"):
        load_config(write(tmp_path, "name: x\ninner: {lr: -1e-5}\n"), Outer)


def test_check_hook_errors_carry_the_source():
    @dataclass
    class WithHook:
        a: int = 1

        def check(self):
            if self.a > 1:
                raise ConfigError("key 'a' too big")

    assert from_mapping(WithHook, {"a": 1}).a == 1
    with pytest.raises(ConfigError, match=r"^here: key 'a' too big"):
        from_mapping(WithHook, {"a": 2}, source="here")


@pytest.mark.parametrize(("text", "pattern"), [
    ("name: x\ninner: {layers: 3}\n", r"key 'inner\.layers' = 3: expected a list"),
    ("name: x\ntags: [1]\n", r"key 'tags' = \[1\]: expected a mapping"),
    ("name: x\ninner: 5\n", r"key 'inner' = 5: expected a mapping of Inner fields"),
    ("name: x\ninner: {lr: fast}\n", r"key 'inner\.lr' = 'fast': expected a number"),
    ("name: 3\n", r"key 'name' = 3: expected a string"),
    ("- a\n- b\n", r"expected a mapping at '<top>'"),
])
def test_type_errors_name_key_and_value(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(write(tmp_path, text), Outer)


def test_bool_field_and_override_through_scalar(tmp_path):
    @dataclass
    class Flags:
        on: bool = False

    with pytest.raises(ConfigError, match=r"key 'on' = 'yes please': expected true or false"):
        from_mapping(Flags, {"on": "yes please"})
    with pytest.raises(ConfigError, match=r"override 'epochs\.x': 'epochs' is not a mapping"):
        load_config(write(tmp_path, "name: x\nepochs: 3\n"), Outer, {"epochs.x": 1})
