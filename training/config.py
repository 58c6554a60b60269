"""Stage configs: a dataclass per stage, layered defaults, then YAML, then command-line overrides.

A stage declares its settings as dataclass fields made with `option(default, help, ...)`;
`parse_config(Cls, argv)` builds the argument parser from the fields (flag `--some-name` for field
`some_name`, help text and range checks from the field), applies a `--config FILE.yaml` on top of
the defaults and the flags given on the command line on top of that, and checks every value.
`save_config` writes the resolved config next to the outputs, headed by the command that made it.
"""

import argparse
import dataclasses
import shlex
import sys
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

from selah.deps import require

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting that is unknown, of the wrong type or out of range; the message names it."""


def option(default: Any, help: str, *, minimum: float | None = None,
           maximum: float | None = None, choices: Sequence | None = None, nargs: int | None = None
           ) -> Any:
    """A config field: its default, help text and the checks its value must pass."""
    meta = {"help": help, "minimum": minimum, "maximum": maximum, "choices": choices,
            "nargs": nargs}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(hint: Any) -> tuple[type, bool]:
    """(the scalar or list type of a field, whether None is allowed)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(args[0])[0], True
    return (list if origin is list else hint), False


def _convert(name: str, value: Any, hint: Any) -> Any:
    kind, optional = _base_type(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} may not be empty")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind is list:
        return [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}") from None


def check_config(config: Any) -> None:
    """Convert and range-check every field in place; ConfigError names the first bad one."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = _convert(f.name, getattr(config, f.name), hints[f.name])
        meta = f.metadata
        if value is not None:
            if meta.get("minimum") is not None and value < meta["minimum"]:
                raise ConfigError(f"{f.name} must be at least {meta['minimum']}, got {value}")
            if meta.get("maximum") is not None and value > meta["maximum"]:
                raise ConfigError(f"{f.name} must be at most {meta['maximum']}, got {value}")
            if meta.get("choices") and value not in meta["choices"]:
                valid = ", ".join(map(str, meta["choices"]))
                raise ConfigError(f"{f.name} must be one of {valid}, got {value!r}")
            if meta.get("nargs") and len(value) != meta["nargs"]:
                raise ConfigError(f"{f.name} takes {meta['nargs']} values, got {len(value)}")
        setattr(config, f.name, value)
    if hasattr(config, "validate"):
        config.validate()


def build_parser(cls: type, prog: str, description: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with `--config` and one flag per field; unset flags are left out."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     argument_default=argparse.SUPPRESS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of settings, applied before the flags")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind, _ = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = f"{f.metadata.get('help', '')} (default: {default})"
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                help=text)
        elif kind is list:
            parser.add_argument(flag, dest=f.name, nargs=f.metadata.get("nargs") or "+",
                                metavar="VALUE", help=text)
        else:
            parser.add_argument(flag, dest=f.name, help=text)
    return parser


def load_yaml(path: str | Path) -> dict:
    """The mapping in a YAML file; ConfigError when it is not a mapping."""
    yaml = require("yaml", "YAML configs")
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    return data


def parse_config(cls: type[T], argv: Sequence[str] | None = None, prog: str = "",
                 description: str | None = None) -> T:
    """Defaults, then `--config` YAML, then flags; checked. Errors exit like argparse's."""
    parser = build_parser(cls, prog or cls.__name__, description)
    args = vars(parser.parse_args(argv))
    try:
        values: dict[str, Any] = {}
        if args.get("config"):
            values.update(load_yaml(args.pop("config")))
        args.pop("config", None)
        values.update(args)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown settings {', '.join(unknown)}; valid: "
                              f"{', '.join(sorted(names))}")
        config = cls(**values)
        check_config(config)
    except ConfigError as exc:
        parser.error(str(exc))
    return config


def save_config(config: Any, path: str | Path, argv: Sequence[str] | None = None,
                prog: str = "") -> Path:
    """Write the resolved config as YAML, headed by the command line that produced it."""
    yaml = require("yaml", "YAML configs")
    argv = sys.argv[1:] if argv is None else argv
    command = " ".join([prog] + [shlex.quote(a) for a in argv]).strip()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)
    path.write_text(f"# {command}\n{body}", encoding="utf-8")
    return path


def stage_settings(cls: type, section: dict, forced: dict) -> Any:
    """A stage config: its defaults, then the section's `config` YAML, then the section, then
    what the pipeline sets (`forced`); checked like the stage's own command line."""
    section = dict(section)
    values = load_yaml(section.pop("config")) if section.get("config") else {}
    values.update(section)
    values.update(forced)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown settings {', '.join(unknown)}")
    config = cls(**values)
    check_config(config)
    return config
