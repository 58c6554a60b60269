"""`training.quantize.export`: the 99% agreement gate, manifest, hashes, scripture, fresh reload."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selah import int8, schema
from selah.checkpoint import FORMAT, MANIFEST, read_manifest, sha256_file
from tests.checkpoints import SONGS, export_checkpoint
from training.quantize.export import ExportError, main, scripture_table

REPO = Path(__file__).resolve().parents[2]


def test_manifest_describes_the_checkpoint(int8_checkpoint, tiny_student):
    manifest, sha = read_manifest(int8_checkpoint)
    assert manifest["format"] == FORMAT and manifest["schema_version"] == schema.SCHEMA_VERSION
    assert sha == hashlib.sha256((int8_checkpoint / MANIFEST).read_bytes()).hexdigest()
    student = json.loads((tiny_student / "student.json").read_text())
    for key in ("backbone_config", "pooling", "max_length", "stride", "heads"):
        assert manifest[key] == student[key], key
    assert manifest["training"] == student["meta"]
    assert manifest["data"]["sha256"] == hashlib.sha256(SONGS.read_bytes()).hexdigest()
    assert manifest["quantization"]["modules"]["backbone.embeddings.word_embeddings"] == "embedding"
    assert "per output channel" in manifest["quantization"]["weights"]
    if manifest["quantization"]["activation_mode"] == "int8":
        assert manifest["quantization"]["smoothing"]["alpha"] == 0.5
    agreement = manifest["agreement"]
    assert agreement["verdict_agreement"] >= 0.99 and agreement["songs"] == 6
    assert agreement["max_probability_diff"] < 0.1 and agreement["score_mae"] < 1.0
    sizes = manifest["sizes"]
    assert sizes["int8_bytes"] == (int8_checkpoint / "model.safetensors").stat().st_size
    assert sizes["int8_bytes"] <= 0.35 * sizes["float_bytes"]
    assert manifest["created_at"] and manifest["model_id"] == "selah-tiny-random-bert-int8"
    assert "does not predict scripture" in (int8_checkpoint / manifest["card"]).read_text()


def test_every_other_file_is_listed_with_its_hash(int8_checkpoint):
    manifest, _ = read_manifest(int8_checkpoint)
    on_disk = {p.name for p in int8_checkpoint.iterdir() if p.name != MANIFEST}
    assert set(manifest["files"]) == on_disk
    assert {"model.safetensors", "tokenizer.json", "MODEL_CARD.md"} <= on_disk
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(int8_checkpoint / name), name
        assert entry["bytes"] == (int8_checkpoint / name).stat().st_size, name


def test_scripture_table_holds_canonical_references_of_catalogue_themes(
        int8_checkpoint):
    table = read_manifest(int8_checkpoint)[0]["scripture"]
    assert table and set(table) <= set(schema.THEME_NAMES)
    assert all(1 <= len(refs) <= 3 for refs in table.values())
    # "Lam 3:22-23" in the labels comes out canonical.
    assert "Lamentations 3:22-23" in table["Worship & Adoration"]


def test_scripture_table_ranks_by_co_occurrence():
    from training.data.readers import Example

    def song(themes, refs):
        label = schema.Label(score=90, verdict="freely_listen", themes=themes,
                             scripture_references=refs)
        return Example("id", "t", "a", "l", label)

    examples = [song(("Faith & Trust",), ("Hebrews 11:1-3", "Psalm 23:4")),
                song(("Faith & Trust",), ("Heb 11:1-3", "Hebrews 11:1")),
                song(("Faith & Trust", "Idolatry"), ("Hebrews 11:1", "Exodus 20:3", "John 99:1"))]
    table = scripture_table(examples, top=2)
    # Hebrews 11:1 and 11:1-3 both come twice; 11:1 sorts first, and 11:1-3 shares its verse.
    assert table == {"Faith & Trust": ["Hebrews 11:1", "Exodus 20:3"],
                     "Idolatry": ["Exodus 20:3", "Hebrews 11:1"]}


def _destroy(monkeypatch):
    original = int8.quantize_weight

    def destroyed(weight, *args, **kwargs):
        q, scale = original(weight, *args, **kwargs)
        return torch.flip(q, dims=[1]).contiguous(), scale  # every row's weights reversed

    monkeypatch.setattr(int8, "quantize_weight", destroyed)


def test_export_refuses_a_quantization_that_changes_verdicts(tiny_student, tmp_path,
                                                             monkeypatch):
    _destroy(monkeypatch)
    out = tmp_path / "refused"
    with pytest.raises(ExportError, match=r"refused: INT8 verdicts agree with the float model on "
                       r".*% with int8 activations, .*% with float activations over 6 songs .* "
                       r"under the required 99%"):
        export_checkpoint(tiny_student, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_auto_falls_back_to_weight_only_when_the_int8_gemm_changes_verdicts(
        tiny_student, tmp_path, monkeypatch):
    def noisy(x, weight_int8, weight_scale, bias):  # an int8 GEMM that got the maths wrong
        generator = torch.Generator().manual_seed(x.numel())
        return 100 * torch.randn(*x.shape[:-1], weight_int8.size(0), generator=generator)

    monkeypatch.setattr(int8, "int8_linear", noisy)
    manifest = export_checkpoint(tiny_student, tmp_path / "out")
    agreement = manifest["agreement"]
    assert agreement["activations"] == "float" and agreement["verdict_agreement"] >= 0.99
    assert agreement["tried"]["int8"] < 0.99
    assert manifest["quantization"]["activation_mode"] == "float"
    assert manifest["quantization"]["rounding"].startswith("GPTQ")
    assert manifest["quantization"]["calibration_songs"] == 12
    assert manifest["quantization"]["smoothing"] is None  # SmoothQuant is for the int8 GEMM only


def test_a_refused_export_keeps_the_previous_checkpoint(
        tiny_student, int8_checkpoint, tmp_path, monkeypatch, capsys):
    import shutil

    out = shutil.copytree(int8_checkpoint, tmp_path / "serving")
    before = (out / MANIFEST).read_bytes()
    _destroy(monkeypatch)
    code = main(["--student", str(tiny_student), "--data", str(SONGS), "--out", str(out)])
    assert code == 2
    assert "refused" in capsys.readouterr().err
    assert (out / MANIFEST).read_bytes() == before


def test_export_needs_the_students_data_for_its_own_split(tiny_student, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(SONGS.read_text().replace("Morning Mercy", "Evening Mercy"))
    with pytest.raises(ExportError, match="not the file the student was trained on"):
        export_checkpoint(tiny_student, tmp_path / "out", data=other)
    manifest = export_checkpoint(tiny_student, tmp_path / "out", data=other, split="all")
    assert manifest["agreement"]["songs"] == 12


def test_the_checkpoint_reloads_in_a_fresh_process_with_identical_predictions(
        int8_checkpoint):
    from selah.checkpoint import load_checkpoint
    from selah.inference import predict_songs

    songs = [json.loads(line) for line in SONGS.read_text().splitlines()][:4]
    songs = [{k: s[k] for k in ("title", "artist", "lyrics")} for s in songs]
    model, featurizer, _, _ = load_checkpoint(int8_checkpoint)
    here = predict_songs(model, featurizer, songs)
    script = (
        "import json, sys\n"
        "from selah.inference import predict_songs\n"
        "from selah.checkpoint import load_checkpoint\n"
        "model, featurizer, _, _ = load_checkpoint(sys.argv[1])\n"
        "songs = json.loads(sys.stdin.read())\n"
        "print(json.dumps(predict_songs(model, featurizer, songs)))\n")
    done = subprocess.run([sys.executable, "-c", script, str(int8_checkpoint)], cwd=REPO,
                          input=json.dumps(songs), capture_output=True, text=True, timeout=120,
                          check=True)
    assert json.loads(done.stdout) == json.loads(json.dumps(here))


def test_a_fitted_decoding_is_shipped_and_served(tiny_student, tmp_path):
    from selah.analyzers import GPTOSSChristianAnalyzer
    from selah.inference import predict_songs
    from selah.student import load_student

    fitted = tmp_path / "decoding.json"
    fitted.write_text(json.dumps({"verdict_temperature": 2.5, "score_sigma": 9.0, "songs": 40}))
    out = tmp_path / "out"
    manifest = export_checkpoint(tiny_student, out, decoding=str(fitted))
    assert manifest["decoding"]["verdict_temperature"] == 2.5
    assert manifest["decoding"]["score_sigma"] == 9.0
    assert manifest["decoding"]["fitted"] == {"songs": 40}
    assert manifest["decoding"]["theme_threshold"] == 0.5
    assert "verdict and score jointly" in (out / manifest["card"]).read_text()
    analyzer = GPTOSSChristianAnalyzer.from_config({"GPTOSS_MODEL_PATH": str(out),
                                                    "GPTOSS_DEVICE": "cpu"})
    song = {"title": "Morning Mercy", "artist": "Test Band",
            "lyrics": "When the morning breaks I lift my eyes\nYour mercy new with every sunrise"}
    served = analyzer.analyze_song(song["title"], song["artist"], song["lyrics"]).to_dict()
    model, featurizer, _ = load_student(tiny_student)
    plain, = predict_songs(model, featurizer, [song])
    joint, = predict_songs(model, featurizer, [song], decoding=manifest["decoding"])
    framework = served["model_analysis"]["framework"]
    # INT8 against float: the same decoding, within quantization noise
    assert framework["confidence"] == pytest.approx(joint["confidence"], abs=0.02)
    assert joint["confidence"] != pytest.approx(plain["confidence"], abs=1e-3)
