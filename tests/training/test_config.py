"""Stage configs: defaults, then YAML, then flags; checks; the saved resolved config."""

from dataclasses import dataclass

import pytest

from training.config import ConfigError, check_config, option, parse_config, save_config


@dataclass
class DemoConfig:
    name: str = option("demo", "a name")
    steps: int = option(10, "number of steps", minimum=1, maximum=100)
    rate: float = option(0.5, "a rate", minimum=0.0, maximum=1.0)
    mode: str = option("fast", "a mode", choices=("fast", "slow"))
    verbose: bool = option(False, "talk more")
    path: str | None = option(None, "an optional path")
    pair: list[str] | None = option(None, "two values", nargs=2)


def test_defaults_then_yaml_then_flags(tmp_path):
    yaml_file = tmp_path / "demo.yaml"
    yaml_file.write_text("steps: 20\nmode: slow\nrate: 0.25\n")
    config = parse_config(DemoConfig, ["--config", str(yaml_file), "--steps", "30", "--verbose",
                                       "--pair", "a", "b"])
    assert (config.name, config.steps, config.rate, config.mode) == ("demo", 30, 0.25, "slow")
    assert config.verbose is True and config.pair == ["a", "b"] and config.path is None


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "steps must be at least 1"),
    (["--steps", "many"], "steps must be int"),
    (["--rate", "1.5"], "rate must be at most 1.0"),
    (["--mode", "medium"], "mode must be one of fast, slow"),
])
def test_bad_values_exit_with_the_setting_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_config(DemoConfig, argv, prog="demo")
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_yaml_setting_is_an_error(tmp_path, capsys):
    yaml_file = tmp_path / "demo.yaml"
    yaml_file.write_text("stepz: 3\n")
    with pytest.raises(SystemExit):
        parse_config(DemoConfig, ["--config", str(yaml_file)])
    assert "unknown settings stepz" in capsys.readouterr().err


def test_check_config_converts_yaml_strings():
    config = DemoConfig(steps="12", verbose="yes")
    check_config(config)
    assert config.steps == 12 and config.verbose is True
    with pytest.raises(ConfigError, match="verbose must be true or false"):
        check_config(DemoConfig(verbose="maybe"))


def test_saved_config_is_headed_by_the_command(tmp_path):
    path = save_config(DemoConfig(steps=5), tmp_path / "out" / "config.yaml", ["--steps", "5"],
                       prog="python -m training.demo")
    text = path.read_text()
    assert text.startswith("# python -m training.demo --steps 5\n")
    assert "steps: 5" in text
