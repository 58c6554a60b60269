"""README.md and .env.example document exactly the settings the code reads, with their defaults,
and the README has a curl example for every route the app serves."""

import ast
import inspect
import re
from pathlib import Path

import pytest
from werkzeug.exceptions import HTTPException

from app.config import Config
from selah import settings as analyzer_settings

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
# Upper-case Config attributes that are not environment variables: Flask, Flask-SQLAlchemy and
# flask-smorest settings, and the tests' backend hook.
NOT_FROM_ENV = {"SQLALCHEMY_TRACK_MODIFICATIONS", "API_TITLE", "API_VERSION", "ANALYZER_CLASS"}
ENV_READERS = {"env_str", "env_int", "env_float", "env_bool"}


def env_defaults(path: Path) -> dict[str, object]:
    """`{variable: default}` of every `env_*("NAME", default, ...)` call in a Python file."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ENV_READERS:
            name, default = node.args[0].value, node.args[1]
            # Defaults are literals or constant arithmetic (2 * 1024 * 1024).
            expression = compile(ast.Expression(default), str(path), "eval")
            found[name] = eval(expression, {})  # noqa: S307 - our own source
    return found


# The service's own settings and the analyzer's (selah.settings, which Config takes in).
APP_SETTINGS = {**env_defaults(Path(inspect.getfile(Config))),
                **env_defaults(Path(inspect.getfile(analyzer_settings)))}
SERVER_SETTINGS = env_defaults(REPO / "gunicorn.conf.py")


def documented_value(value: str, default: object) -> bool:
    """Whether a value as written in the docs is `default`."""
    if isinstance(default, bool):
        return value in ("true", "false") and (value == "true") == default
    if isinstance(default, (int, float)):
        return value != "" and float(value) == default
    return value == default


def section(title: str) -> str:
    """The README text under the heading `title`, up to the next heading of its level or above."""
    level, lines, inside, fenced = len(title.split(" ")[0]), [], False, False
    for line in README.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced  # shell comments in code blocks look like headings
        heading = None if fenced else re.match(r"(#+) ", line)
        if inside and heading and len(heading.group(1)) <= level:
            break
        if inside:
            lines.append(line)
        inside = inside or (heading is not None and line == title)
    assert inside, f"README has no {title!r}"
    return "\n".join(lines)


def table(text: str) -> dict[str, str]:
    """`{variable: default as written}` of the first variable table in `text`."""
    rows = {}
    lines = text[text.index("| Variable |"):].splitlines()
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        name, default = (cell.strip() for cell in line.strip("|").split("|")[:2])
        assert re.fullmatch(r"`[A-Z][A-Z0-9_]*`", name), line
        literal = re.fullmatch(r"`([^`]*)`", default)
        assert literal or default == "*(empty)*", f"default must be `value` or *(empty)*: {line}"
        assert name.strip("`") not in rows, f"{name} twice"
        rows[name.strip("`")] = literal.group(1) if literal else ""
    return rows


def test_every_config_attribute_is_read_from_the_environment():
    """Config's settings are exactly its `env_*` calls, each under the variable's own name."""
    attributes = {
        name for name in vars(Config)
        if name.isupper() and name not in NOT_FROM_ENV and not name.startswith("OPENAPI_")
    }
    assert attributes == set(APP_SETTINGS)
    assert SERVER_SETTINGS.keys() == {"HOST", "PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS"}


@pytest.mark.parametrize(
    ("title", "settings"),
    [("## Configuration", APP_SETTINGS), ("### Server process", SERVER_SETTINGS)],
)
def test_readme_tables_match_the_code(title, settings):
    """Each README table lists exactly the variables its file reads, with their defaults."""
    rows = table(section(title))
    assert rows.keys() == settings.keys()
    for name, default in settings.items():
        assert documented_value(rows[name], default), (
            f"{name}: README {rows[name]!r}, code {default!r}")


def test_env_example_matches_the_code():
    """`.env.example` sets every variable once, to its default."""
    lines = (REPO / ".env.example").read_text().splitlines()
    assignments = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    names = [name for name, _ in assignments]
    assert len(names) == len(set(names)), "a variable is set twice"
    values = dict(assignments)
    expected = {**APP_SETTINGS, **SERVER_SETTINGS}
    assert values.keys() == expected.keys()
    for name, default in expected.items():
        assert documented_value(values[name], default), f"{name}: {values[name]!r} != {default!r}"


def test_readme_opens_with_make_serve_and_make_test():
    """The first two code blocks are the two commands a newcomer needs."""
    blocks = re.findall(r"^```\w*\n(.*?)^```", README, re.M | re.S)
    assert [block.strip() for block in blocks[:2]] == ["make serve", "make test"]
    opening = README[:README.index("## ")]
    assert "http://127.0.0.1:5000/healthz" in opening


def curl_examples(text: str) -> list[tuple[str, str]]:
    """`(method, path)` of every curl command in `text` (-X names the method; GET otherwise)."""
    commands = re.findall(r"^curl .*?(?<!\\)$", text.replace("\\\n", " "), re.M)
    examples = []
    for command in commands:
        method = re.search(r"-X (\w+)", command)
        url = re.search(r"http://127\.0\.0\.1:5000(/[^\s'\"?]*)", command)
        assert url, command
        examples.append((method.group(1) if method else "GET", url.group(1)))
    return examples


def test_readme_has_a_curl_example_for_every_route(app):
    """Every route and method the app serves (aliases included) has an example that it matches."""
    served = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules() if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    adapter = app.url_map.bind("127.0.0.1:5000")
    documented = set()
    for method, path in curl_examples(section("## Routes")):
        try:
            rule, _args = adapter.match(path, method, return_rule=True)
        except HTTPException:
            pytest.fail(f"README example {method} {path} matches no route")
        documented.add((rule.rule, method))
    assert served - documented == set(), "routes without a curl example in the README"


DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "training" / "configs").glob("*.yaml"))]
# Old command names a document may mention only to say they moved.
MOVED = {"training.export", "training.crossval"}


def documented_commands() -> set[tuple[str, str]]:
    """`(document, module)` of every `python -m training.X` / `selah.X` a document names."""
    found = set()
    for path in DOCUMENTS:
        for module in re.findall(r"-m ((?:training|selah|app)(?:\.\w+)*)", path.read_text()):
            found.add((path.name, module))
    return found


def test_the_docs_name_commands():
    assert len({module for _, module in documented_commands()}) >= 8


@pytest.mark.parametrize("document, module", sorted(documented_commands()))
def test_every_documented_command_runs_a_module_with_a_main(document, module):
    """`python -m MODULE` resolves: a module with a `main()`, or a package with a `__main__`."""
    import importlib
    import importlib.util

    if module in MOVED:
        said = f"(was `python -m {module}`)" in " ".join(README.split())
        assert said, f"{document} names the old command {module} without saying it moved"
        return
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{document}: python -m {module} has no module"
    if spec.submodule_search_locations is not None:  # a package runs its __main__
        assert importlib.util.find_spec(f"{module}.__main__") is not None, module
    else:
        assert callable(getattr(importlib.import_module(module), "main", None)), module
