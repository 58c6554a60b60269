"""The model card's teacher paragraph: members, their licences, how they were combined."""

from training.quantize.card import teacher_lines


def provenance(combine: str) -> dict:
    return {"teacher_provenance": {
        "teacher": "heads: mpnet + tfidf", "mode": "classification heads", "folds": 5, "views": 1,
        "combine": combine, "date": "2026-12-07",
        "members": {"mpnet": ["--backbone", "packaged:all-mpnet-base-v2", "--epochs", "20"],
                    "tfidf": ["word {...}", "char {...}", "C 4.0", "ridge alpha 1.0"]}}}


def test_members_are_named_with_their_licences():
    text = "\n".join(teacher_lines(provenance("stack")))
    assert "- member mpnet: `packaged:all-mpnet-base-v2` (Apache-2.0)" in text
    assert "- member tfidf: TF-IDF word and character n-grams" in text
    assert "no pretrained weights" in text and "(stacked)" in text


def test_an_averaged_teacher_says_so_and_gold_labels_name_none():
    assert "probabilities averaged" in teacher_lines(provenance("mean"))[0]
    assert teacher_lines({}) == []
