"""The package layering of docs/architecture.md, checked on the source and on a running service.

Arrows point down: `app` and `training` stand on `selah`; `selah` imports neither; neither imports
the other (`training.evaluate` builds backends through `selah.analyzers`, the registry the
service uses too). The installed distribution is `selah` alone (tests/selah/compat checks the
wheel).
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "selah", "training")
MAX_LINES = 400


def modules(package: str) -> list[Path]:
    """Every Python file of a package, sorted."""
    return sorted((REPO / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module name a file imports, at any depth (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def top(name: str) -> str:
    return name.split(".")[0]


def test_every_package_is_found():
    for package in PACKAGES:
        assert len(modules(package)) > 5, package


@pytest.mark.parametrize("path", modules("selah"), ids=lambda p: str(p.relative_to(REPO)))
def test_selah_imports_neither_app_nor_training(path):
    assert not {n for n in imported(path) if top(n) in ("app", "training")}


@pytest.mark.parametrize("path", modules("app"), ids=lambda p: str(p.relative_to(REPO)))
def test_app_imports_nothing_from_training(path):
    assert not {n for n in imported(path) if top(n) == "training"}


@pytest.mark.parametrize("path", modules("training"), ids=lambda p: str(p.relative_to(REPO)))
def test_training_imports_nothing_from_app(path):
    assert not {n for n in imported(path) if top(n) == "app"}


@pytest.mark.parametrize("path", [p for package in PACKAGES for p in modules(package)],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_is_over_the_line_budget(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_a_service_that_analyses_a_song_has_not_imported_training():
    """In a fresh process: build the app (torch not yet imported), load the embedded model,
    analyse one song; not one `training` module is loaded on the way."""
    code = (
        "import json, sys\n"
        "from app import create_app\n"
        "from app.config import Config\n"
        "class C(Config):\n"
        "    TESTING = True\n"
        "    DATABASE_URL = 'sqlite://'\n"
        "    ANALYZER_LOAD_ON_START = False\n"
        "    MODEL_WATCH_SECONDS = 0.0\n"
        "    JOB_RUNNER = 'none'\n"
        "app = create_app(C)\n"
        "light = 'torch' not in sys.modules\n"
        "with app.app_context():\n"
        "    from selah.analyzers import get_shared_analyzer\n"
        "    result = get_shared_analyzer().analyze_song('Morning Hymn', 'Test Choir',\n"
        "        'Holy holy holy Lord God almighty\\nEarly in the morning our song shall rise')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'training')\n"
        "print(json.dumps({'ok': result.is_successful(), 'training': loaded, 'light': light,\n"
        "                  'selah': 'selah.inference' in sys.modules}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"ok": True, "training": [], "light": True, "selah": True}
