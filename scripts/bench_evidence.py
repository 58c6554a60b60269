"""Benchmark issue 16's evidence: quoted scripture and the lines behind each concern.

    .venv/bin/python scripts/bench_evidence.py --data ../shared/data/songs.jsonl \\
        [--checkpoint DIR] [--songs 0] [--sample 40] [--sample-out /tmp/evidence-sample.txt]

1. Quote detection (`selah.quotes`) on the project's own songs: precision, recall and false hits
   of the development set the thresholds were set on and of the confirmation set; then how many
   of the data set's songs quote a verse, with a sample written to `--sample-out` to check by hand
   (the file holds lyric lines: keep it out of the repository).
2. Evidence lines (`selah.evidence`) on the data set's songs whose gold labels have one of four
   concerns a word list can recognise (Profanity, Sexual Immorality, Substance Abuse,
   Violence/Revenge) and which the model flags: how often a line named as evidence holds one of
   the concern's words, for the shipped reading (a line's strongest token), for a line's mean
   token logit, for each line encoded alone (a second forward pass), and for any line of the
   same songs (the base rate). A random sample of named lines goes to `--sample-out` as well.
3. Cost: `analyze_songs_batch` over the same songs, `analyze_song` of 1,500-character songs and
   `POST /api/analyze` of them through the service's app from a request thread, with
   GPTOSS_EVIDENCE on and off, interleaved in one process (the machine is shared: compare the
   two columns of one run, not runs).

Lyrics are read at run time; nothing from the data set is stored in the repository.
"""

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "tests" / "selah" / "fixtures"
# Words a reader accepts as each concern (a crude proxy: a line can carry a concern without them).
LEXICON = {
    "Profanity": r"damn\w*|hell|shit\w*|fuck\w*|bitch\w*|ass|asses|goddamn|crap|motherf\w*|dick"
                 r"|piss\w*|bastard\w*|hoes?|n[i1]gg\w*",
    "Sexual Immorality": r"sex\w*|bed|naked|bod(y|ies)|kiss\w*|touch\w*|clothes|lust\w*|hips"
                         r"|sheets|thighs|freak\w*|strip\w*|undress\w*|love ?making|booty|sexy"
                         r"|hot|lips|skin|wanna|tonight|girls?|baby",
    "Substance Abuse": r"drunk\w*|drink\w*|wasted|high|weed|smok\w*|beer|whiskey|wine|liquor"
                       r"|pills?|coke|cocaine|blunt|joint|shots?|alcohol|bottle|sip\w*|lean"
                       r"|molly|xanax|tequila|vodka|gin|rum|stoned|buzz\w*|dope|drugs?|bar",
    "Violence/Revenge": r"kill\w*|guns?|shoot\w*|shot|blood\w*|murder\w*|fight\w*|die|dead|knife"
                        r"|glock|revenge|war|bullets?|stab\w*|beat|hurt|pistol|trigger|choppa"
                        r"|body|bodies|smoke|blast\w*|hate",
}


def read_songs(path: Path, limit: int) -> list[dict]:
    """The data set's songs with their gold labels (the first `limit`; 0: all)."""
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    return rows[:limit] if limit else rows


def quote_sets(index) -> dict:
    """Precision, recall and false hits of each fixture set."""
    figures = {}
    for name in ("quote_songs_dev.json", "quote_songs_test.json"):
        data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
        named = right = groups = found_groups = false_hits = 0
        times = []
        for song in data["quoting"] + data["no_quote"]:
            started = time.perf_counter()
            found = [q.reference for q in index.find(song["lyrics"])]
            times.append(time.perf_counter() - started)
            if "quotes" not in song:
                false_hits += len(found)
                continue
            expected = {ref for group in song["quotes"] for ref in group}
            named, right = named + len(found), right + sum(r in expected for r in found)
            groups += len(song["quotes"])
            found_groups += sum(any(r in group for r in found) for group in song["quotes"])
        figures[name] = {"precision": f"{right}/{named}", "recall": f"{found_groups}/{groups}",
                         "no_quote_songs": len(data["no_quote"]), "false_hits": false_hits,
                         "median_ms": round(1000 * statistics.median(times), 2)}
    return figures


def quote_data_set(index, rows: list[dict], sample: int, out) -> dict:
    """How many of the data set's songs quote a verse; a sample of them to `out`."""
    found, times = [], []
    for row in rows:
        started = time.perf_counter()
        quotes = index.find(row["lyrics"])
        times.append(time.perf_counter() - started)
        if quotes:
            found.append((row, quotes))
    for row, quotes in random.Random(0).sample(found, min(sample, len(found))):
        lines = row["lyrics"].splitlines()
        for quote in quotes:
            sung = " / ".join(lines[n - 1].strip() for n in quote.lines)
            out.write(f"QUOTE {row['title']} | {quote.reference} ({quote.translation}, "
                      f"match {quote.match}) | verse: {quote.text}\n    sung: {sung}\n")
    return {"songs": len(rows), "songs_with_a_quote": len(found),
            "quotes": sum(len(q) for _, q in found),
            "median_ms": round(1000 * statistics.median(times), 2),
            "p95_ms": round(1000 * sorted(times)[int(0.95 * (len(times) - 1))], 2)}


def line_methods(analyzer, song: dict, column: int) -> dict[str, list[str]]:
    """The three readings' top lines (at most 3 distinct texts) for one concern column."""
    import torch

    from selah.inference import encode_buckets, featurize_buckets, predict_songs

    model, featurizer = analyzer.model, analyzer.featurizer
    texts = song["lyrics"].splitlines()
    prediction, = predict_songs(model, featurizer, [song], evidence=True)
    readings = prediction["line_logits"]
    peak = {n: row[column] for n, row in zip(readings["lines"], readings["concerns"])}
    batch = featurize_buckets(featurizer, [song], lines=True)
    sums: dict[int, list] = {}
    with torch.inference_mode():
        for group, (_, ids, mask) in enumerate(batch["buckets"]):
            states = model.window_terms(ids, mask, states=True)[2]
            logits = model.heads["concerns"](states)[..., column]
            for row in range(len(ids)):
                for token, line in enumerate(batch["lines"][group][row].tolist()):
                    if line:
                        sums.setdefault(line, []).append(float(logits[row, token]))
        distinct = sorted({t.strip() for t in texts if t.strip()})
        alone = featurize_buckets(featurizer, [{"title": "", "artist": "", "lyrics": t}
                                               for t in distinct])
        pooled = encode_buckets(model, alone, "cpu")
        own = dict(zip(distinct, model.heads["concerns"](pooled)[:, column].tolist()))
    scores = {"strongest token (shipped)": {n: v for n, v in peak.items()},
              "mean token": {n: statistics.fmean(v) for n, v in sums.items()},
              "line alone": {n: own[texts[n - 1].strip()] for n in peak}}
    top = {}
    for method, by_line in scores.items():
        chosen = []
        for line in sorted(by_line, key=lambda n: (-by_line[n], n)):
            text = texts[line - 1].strip()
            if text and text not in chosen:
                chosen.append(text)
            if len(chosen) == 3:
                break
        top[method] = chosen
    return top


def evidence_figures(analyzer, rows: list[dict], sample: int, out) -> dict:
    """How often a named line holds one of its concern's words, per reading, and the base rate."""
    from selah import schema

    columns = {name: i for i, name in enumerate(schema.CONCERN_CATEGORIES)}
    hits: dict[str, list[int]] = {}
    items, examples = 0, []
    for row in rows:
        gold = {c.split(" (")[0] for c in row["label"].get("concerns", [])} & set(LEXICON)
        if not gold:
            continue
        song = {k: row[k] for k in ("title", "artist", "lyrics")}
        flagged = {f["category"]: f for f in analyzer.analyze_song(**song)
                   .content_analysis["concern_flags"]}
        for concern in sorted(gold & set(flagged)):
            words = re.compile(rf"\b({LEXICON[concern]})\b", re.IGNORECASE)
            items += 1
            for method, lines in line_methods(analyzer, song, columns[concern]).items():
                hit = hits.setdefault(method, [0, 0])
                hit[0] += sum(bool(words.search(line)) for line in lines)
                hit[1] += len(lines)
            every = [t.strip() for t in song["lyrics"].splitlines() if t.strip()]
            base = hits.setdefault("any line of the song (base rate)", [0, 0])
            base[0] += sum(bool(words.search(line)) for line in every)
            base[1] += len(every)
            for found in flagged[concern]["evidence"]:
                examples.append(f"EVIDENCE {row['title']} | {concern} | lines {found['lines']} "
                                f"| strength {found['strength']} | {found['text']}\n")
    for line in random.Random(0).sample(examples, min(sample, len(examples))):
        out.write(line)
    return {"items (song, concern flagged and gold)": items,
            **{method: f"{a}/{b} = {a / max(b, 1):.3f}" for method, (a, b) in hits.items()}}


def cost(checkpoint: str | None, rows: list[dict], repeats: int) -> dict:
    """Evidence on against off, interleaved in one process: `analyze_songs_batch` songs/min,
    `analyze_song` of 1,500-character songs, and `POST /api/analyze` of the same songs through
    the service's Flask app (result cache off), with the response's size. Called from a thread
    that is not the main one, in a process whose main thread runs no torch (`main` starts it
    so): every call then goes to the torch thread, as a served request's does, and one OpenMP
    team does all the work (`selah.runtime.TorchThread`)."""
    from selah.analyzers.gptoss import GPTOSSChristianAnalyzer

    settings = {"GPTOSS_MODEL_PATH": checkpoint or "", "GPTOSS_DEVICE": "cpu"}
    analyzers = {flag: GPTOSSChristianAnalyzer.from_config({**settings, "GPTOSS_EVIDENCE": flag})
                 for flag in (True, False)}
    clients = {flag: _service(settings, flag).test_client() for flag in (True, False)}
    songs = [{k: r[k] for k in ("title", "artist", "lyrics")} for r in rows]
    cut = [dict(s, lyrics=s["lyrics"][:1500]) for s in songs if len(s["lyrics"]) >= 1500][:100]
    rates: dict[bool, list[float]] = {True: [], False: []}
    single: dict[bool, list[float]] = {True: [], False: []}
    served: dict[bool, list[float]] = {True: [], False: []}
    size: dict[bool, list[int]] = {True: [], False: []}

    for _ in range(repeats):
        for flag, analyzer in analyzers.items():
            started = time.perf_counter()
            analyzer.analyze_songs_batch(songs)
            rates[flag].append(60 * len(songs) / (time.perf_counter() - started))
        for song in cut:
            for flag, analyzer in analyzers.items():
                started = time.perf_counter()
                analyzer.analyze_song(**song)
                single[flag].append(1000 * (time.perf_counter() - started))
            for flag, client in clients.items():
                started = time.perf_counter()
                response = client.post("/api/analyze", json=song)
                served[flag].append(1000 * (time.perf_counter() - started))
                assert response.status_code == 200, response.get_data(as_text=True)[:200]
                size[flag].append(len(response.get_data()))
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    return {"runtime": analyzers[True].runtime.name, "songs": len(songs),
            "batch songs/min, evidence on": round(on, 1),
            "batch songs/min, evidence off": round(off, 1), "on / off": round(on / off, 3),
            "1,500-character songs": len(cut),
            "analyze_song median ms, evidence on": round(statistics.median(single[True]), 2),
            "analyze_song median ms, evidence off": round(statistics.median(single[False]), 2),
            "POST /api/analyze median ms, evidence on": round(statistics.median(served[True]), 2),
            "POST /api/analyze median ms, evidence off": round(
                statistics.median(served[False]), 2),
            "response bytes median, on / off": [statistics.median(size[True]),
                                                statistics.median(size[False])]}


def _service(settings: dict, evidence: bool):
    """The service's app on an in-memory database, with this analyzer setting."""
    from app import create_app
    from app.config import Config
    from app.extensions import db

    config = type("BenchConfig", (Config,), {
        "DATABASE_URL": "sqlite://", "ANALYZER_LOAD_ON_START": False, "JOB_RUNNER": "none",
        "RESULT_CACHE_SIZE": 0, "MODEL_WATCH_SECONDS": 0.0, "GPTOSS_EVIDENCE": evidence,
        **settings})
    app = create_app(config)
    with app.app_context():
        db.create_all()
    return app


def main(argv=None) -> int:
    """Run the three parts and print their figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the labelled JSONL file")
    parser.add_argument("--checkpoint", help="checkpoint folder (default: the embedded one)")
    parser.add_argument("--songs", type=int, default=0, help="songs of the data set (0: all)")
    parser.add_argument("--sample", type=int, default=40, help="examples written to check")
    parser.add_argument("--sample-out", type=Path, default=Path("/tmp/evidence-sample.txt"))
    parser.add_argument("--repeats", type=int, default=2, help="passes of the cost part")
    parser.add_argument("--cost-only", action="store_true",
                        help="run the cost part alone (the full run starts it so, in a process "
                             "of its own)")
    args = parser.parse_args(argv)
    if args.cost_only:
        import threading

        found = []
        worker = threading.Thread(target=lambda: found.append(
            cost(args.checkpoint, read_songs(args.data, args.songs), args.repeats)))
        worker.start()
        worker.join()
        print(json.dumps(found[0]))
        return 0

    from selah.analyzers.gptoss import GPTOSSChristianAnalyzer
    from selah.quotes import default_index

    started = time.perf_counter()
    index = default_index()
    report = {"quote index ready s": round(time.perf_counter() - started, 2)}
    rows = read_songs(args.data, args.songs)
    with args.sample_out.open("w", encoding="utf-8") as out:
        report["quotes, project songs"] = quote_sets(index)
        report["quotes, data set"] = quote_data_set(index, rows, args.sample, out)
        analyzer = GPTOSSChristianAnalyzer.from_config(
            {"GPTOSS_MODEL_PATH": args.checkpoint or "", "GPTOSS_DEVICE": "cpu"})
        report["evidence lines holding a concern's words"] = evidence_figures(
            analyzer, rows, args.sample, out)
    command = [sys.executable, __file__, "--cost-only", "--data", str(args.data), "--songs",
               str(args.songs), "--repeats", str(args.repeats)]
    if args.checkpoint:
        command += ["--checkpoint", args.checkpoint]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    report["cost"] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
