"""`scripts/device_check.py --tiny`: the GPU check's code path on tiny configs on CPU."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "device_check.py"


def test_the_tiny_device_check_runs_every_part_and_writes_json_and_markdown(tmp_path):
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--tiny", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "device_check.json").read_text())
    gptoss, galore = report["gptoss"], report["galore"]
    assert not gptoss.get("error") and not galore.get("error")
    assert [row["batch"] for row in gptoss["bf16"]["throughput"]] == [1, 2]
    assert all(row["songs_per_minute"] > 0 for row in gptoss["int8"]["throughput"])
    assert gptoss["int8"]["tensor_gib"] < gptoss["bf16"]["tensor_gib"]
    assert gptoss["agreement"]["songs"] == 2 and galore["projected_matrices"] == 2 * 7
    markdown = (tmp_path / "device_check.md").read_text()
    assert "songs/min" in markdown and "GaLore step" in markdown
