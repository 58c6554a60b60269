"""A lexical member of the classification-head teacher: TF-IDF word and character n-grams under
one linear model per labelled field (scikit-learn).

Issue 11's probe put TF-IDF features at 0.698 verdict accuracy in 5-fold CV, below the frozen
encoders, but wrong in other places than they are (it reads spelling, slang and profanity the
pretrained encoders smooth over), which is what a member of an ensemble is for. Per fit:

- the vocabulary and IDF come from the fit's training songs only (word 1-2 grams and character
  2-5 grams inside word boundaries, sublinear TF, each L2-normalised, joined);
- categorical fields (verdict, formation risk, narrative voice, lament filter): a multinomial
  logistic regression on the songs whose label has the field;
- multilabel fields (themes, concerns): one logistic regression per item; an item every training
  song has or none has gets its smoothed training rate as a constant probability;
- the score: ridge regression on score / 100, clipped to [0.01, 0.99].

The regularisation (`C`, `ALPHA`) is scikit-learn's usual scale for L2-normalised TF-IDF rows,
set once and not tuned on these songs. Returns logits in the student's head layout
(`training.teacher.ensemble`), so the member joins the average like any other; the concern
severities, which a teacher does not label, are left to the neural members.
"""

import time

import torch

from selah.student import song_text
from training.teacher.ensemble import EPS, LABELLED, SPECS, gold_targets

NAME = "tfidf"
WORD = {"analyzer": "word", "ngram_range": (1, 2), "min_df": 2, "sublinear_tf": True,
        "max_features": 50_000}
CHAR = {"analyzer": "char_wb", "ngram_range": (2, 5), "min_df": 2, "sublinear_tf": True,
        "max_features": 100_000}
C = 4.0  # inverse L2 strength of the logistic regressions
ALPHA = 1.0  # L2 strength of the score's ridge regression
SCORE_CLIP = (0.01, 0.99)


def _require():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise SystemExit("the tfidf member needs scikit-learn: pip install -e '.[training]'")


def text(example) -> str:
    """What the member reads of a song: the student's text (title, artist, lyrics)."""
    return song_text(example.title, example.artist, example.lyrics)


def vectorize(train: list, labelled: list):
    """Sparse TF-IDF rows (train, labelled): vocabularies and IDF fitted on `train` alone."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    train_texts, labelled_texts = [text(e) for e in train], [text(e) for e in labelled]
    fitted, applied = [], []
    for settings in (WORD, CHAR):
        vectorizer = TfidfVectorizer(lowercase=True, **settings)
        fitted.append(vectorizer.fit_transform(train_texts))
        applied.append(vectorizer.transform(labelled_texts))
    return hstack(fitted).tocsr(), hstack(applied).tocsr()


def _categorical(x_train, x_out, train: list, name: str) -> torch.Tensor:
    from sklearn.linear_model import LogisticRegression

    width = SPECS[name].width
    rows, gold = gold_targets(name, train)
    if len(set(gold.tolist())) < 2:  # one class or none: every song gets the training rates
        counts = torch.bincount(gold, minlength=width)
        rates = ((counts + 1.0) / (counts.sum() + width)).log()
        return rates.expand(x_out.shape[0], width).clone()
    model = LogisticRegression(C=C, max_iter=2000).fit(x_train[rows], gold.numpy())
    out = torch.full((x_out.shape[0], width), EPS)
    out[:, list(model.classes_)] = torch.tensor(model.predict_proba(x_out), dtype=torch.float32)
    return out.clamp(min=EPS).log()


def _multilabel(x_train, x_out, train: list, name: str) -> torch.Tensor:
    from sklearn.linear_model import LogisticRegression

    _, gold = gold_targets(name, train)  # 0/1 [N, K]
    out = torch.zeros(x_out.shape[0], gold.size(1))
    for j, column in enumerate(gold.T):
        if 0 < column.sum() < len(column):
            model = LogisticRegression(C=C, max_iter=2000).fit(x_train, column.long().numpy())
            out[:, j] = torch.tensor(model.decision_function(x_out), dtype=torch.float32)
        else:
            rate = (float(column.sum()) + 0.5) / (len(column) + 1.0)
            out[:, j] = torch.logit(torch.tensor(rate))
    return out


def _score(x_train, x_out, train: list) -> torch.Tensor:
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=ALPHA).fit(x_train, (gold_targets("score", train)[1].double() / 100.0).numpy())
    values = torch.tensor(model.predict(x_out), dtype=torch.float32).clamp(*SCORE_CLIP)
    return torch.logit(values)[:, None]


def fit_logits(train: list, labelled: list) -> dict[str, torch.Tensor]:
    """`{head: logits [len(labelled), width]}` of the labelled fields and the score, from models
    fitted on `train` (examples with gold labels) and applied to `labelled`."""
    _require()
    x_train, x_out = vectorize(train, labelled)
    logits = {}
    for name in LABELLED:
        fit = _categorical if SPECS[name].kind == "categorical" else _multilabel
        logits[name] = fit(x_train, x_out, train, name)
    logits["score"] = _score(x_train, x_out, train)
    return logits


def run_fit(train: list, labelled: list, scored: list) -> dict:
    """One cross-fitting fit as `training.teacher.heads` saves it: the labelled songs' ids and
    logits, the verdict accuracy on `scored` (the held-out folds' own songs, a subset of
    `labelled`) and the seconds it took."""
    started = time.perf_counter()
    logits = fit_logits(train, labelled)
    row = {e.song_id: i for i, e in enumerate(labelled)}
    verdicts = SPECS["verdict"].labels
    hits = [verdicts[int(logits["verdict"][row[e.song_id]].argmax())] == e.label.verdict
            for e in scored]
    return {"song_ids": [e.song_id for e in labelled], "logits": logits,
            "val_metrics": {"verdict_accuracy": sum(hits) / max(len(hits), 1)},
            "seconds": time.perf_counter() - started}
