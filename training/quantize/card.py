"""MODEL_CARD.md of an exported checkpoint: what it is, how it was made, what it does not do."""

import json

# Licences of the teachers' backbones a teacher-labels file can name (training.teacher.heads).
LICENCES = {
    "all-mpnet-base-v2": "Apache-2.0",
    "SmolLM2-135M-Instruct": "Apache-2.0",
    "all-MiniLM-L6-v2": "Apache-2.0",
}


def teacher_lines(meta: dict) -> list[str]:
    """The teacher of the training run, its members and their licences (none: gold labels)."""
    teacher = meta.get("teacher_provenance") or {}
    if not teacher:
        return []
    lines = [f"Teacher: {teacher.get('teacher', 'unnamed')} ({teacher.get('mode', 'generative')})"
             f", labels written {teacher.get('date', '?')}, cross-fitted over "
             f"{teacher.get('folds', '?')} folds (no song's soft label comes from a fit that saw "
             f"it), {teacher.get('views', 0)} view(s) of each training song labelled too; "
             + ("the members combined by a linear model per head fitted on songs no member fit "
                "saw (stacked)." if teacher.get("combine") == "stack" else
                "the members' probabilities averaged."), ""]
    for name, flags in (teacher.get("members") or {}).items():
        if name == "tfidf" and not any(f == "--backbone" for f in flags):
            lines.append(f"- member {name}: TF-IDF word and character n-grams under linear "
                         "models fitted on the gold labels (scikit-learn; no pretrained weights)")
            continue
        backbone = next((flags[i + 1] for i, f in enumerate(flags[:-1]) if f == "--backbone"),
                        "?")
        key = backbone.split(":", 1)[-1]
        licence = LICENCES.get(key, "licence: see its source")
        lines.append(f"- member {name}: `{backbone}` ({licence})")
    return lines + [""]


def decoding_line(decoding: dict) -> str:
    """How the service turns the heads into a verdict, score and confidence."""
    if decoding.get("score_sigma") and decoding.get("score_mode") == "conditional":
        return (f"Decoding: verdict = argmax of its head (tempered by T = "
                f"{decoding.get('verdict_temperature', 1.0):.2f}); score = the mean of the score "
                f"head's N(raw, {decoding['score_sigma']:.1f}^2) inside that verdict's band, "
                "both fitted on out-of-fold songs of the recipe's cross-validation.")
    if decoding.get("score_sigma"):
        return (f"Decoding: verdict and score jointly (score head read as N(raw, "
                f"{decoding['score_sigma']:.1f}^2), the verdict head tempered by T = "
                f"{decoding.get('verdict_temperature', 1.0):.2f}), both fitted on out-of-fold "
                "songs of the recipe's cross-validation.")
    return "Decoding: verdict = argmax of its head; score = the score head clamped into its band."


def model_card(manifest: dict) -> str:
    """MODEL_CARD.md: what the checkpoint is, how it was made and what it does not do."""
    agreement, sizes, meta = manifest["agreement"], manifest["sizes"], manifest["training"]
    backbone, quant = manifest["backbone_config"], manifest["quantization"]
    sources = meta.get("teacher_sources") or {}
    source_lines = "".join(f"- {name}: {source}\n" for name, source in sorted(sources.items())
                           ) or "- not recorded by the training run\n"
    metrics = meta.get("metrics")
    return "\n".join([
        f"# {manifest['model_id']}",
        "",
        f"A {backbone.get('model_type', '?')} encoder (`{manifest['backbone_source']}`, "
        f"{backbone.get('num_hidden_layers', '?')} layers, "
        f"hidden {backbone.get('hidden_size', '?')})"
        " with one head per label field: verdict, score, themes, concerns and their severities, "
        "sentiment, emotion, safety, formation risk, narrative voice, lament filter. It reads "
        f"title, artist and the whole lyric in {manifest['max_length']}-token windows "
        f"({manifest['stride']} tokens of overlap), {manifest['pooling']}-pooled.",
        "",
        "## Data and teachers",
        "",
        f"Trained on `{manifest['data']['file']}` (SHA-256 `{manifest['data']['sha256'][:16]}...`, "
        f"{manifest['data']['songs']} songs) with labels written by GPT-4o-mini under the "
        "\"Christian Framework v3.1\". Where each head's training signal came from:",
        "",
        source_lines,
        *teacher_lines(meta),
        f"Validation metrics of the float student: `{json.dumps(metrics) if metrics else 'none'}`.",
        "",
        decoding_line(manifest.get("decoding") or {}),
        "",
        "## Quantization",
        "",
        f"Weights: {quant['weights']}; rounding: {quant['rounding']}. Embedding table: "
        f"{quant['embedding']}. Activations: {quant['activations']} ({quant['library']}). "
        f"Float: {quant['float_modules']}. Size {sizes['int8_bytes']:,} bytes against "
        f"{sizes['float_bytes']:,} for the float student ({sizes['ratio']:.0%}).",
        "",
        f"Against the float model on {agreement['songs']} songs ({agreement['split']}): verdict "
        f"agreement {agreement['verdict_agreement']:.2%}, largest probability difference "
        f"{agreement['max_probability_diff']:.4f}, score MAE {agreement['score_mae']:.3f} points.",
        "",
        "## Supporting scripture",
        "",
        "The model does not predict scripture references. The service shows first the verses "
        "the lyric itself quotes or closely paraphrases (`selah.quotes`, with the lines they are "
        "sung on), then for each predicted theme the verses of `selah.scripture_topics`, a "
        "hand-written table checked to speak to each theme. For a theme that table lacks it "
        "falls back to this checkpoint's table: the references that most often accompanied the "
        f"theme in the labels of the training songs (up to {manifest['scripture_per_theme']} per "
        "theme, canonicalised and validated by pythonbible), associations learned from the "
        "labels, not a reading of the song. Verse text is the American Standard Version that "
        "pythonbible ships.",
        "",
        "## Limits",
        "",
        "The labels are one model's judgement (GPT-4o-mini), not a church's or a pastor's; the "
        "student imitates them and inherits their blind spots. The middle tiers "
        "(context_required, caution_limit) are the least reliable. `needs_review` marks scores "
        "within 3 points of a band edge or a low verdict confidence. Lyrics are read as text "
        "only: delivery, video and the artist's context are not seen.",
        "",
    ])
