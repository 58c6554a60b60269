"""Builders of the gpt-oss student tests: tiny random gpt-oss backbones from a real `GptOssConfig`.

The backbone keeps gpt-oss's architecture (attention sinks, alternating sliding/full attention,
fused experts with top-k routing, YaRN rope, bias everywhere) at toy sizes: 2 layers, 4 experts,
top-2. Its tokenizer is a byte-level BPE (the kind o200k_harmony is) trained here on the fixture
songs, with the harmony special tokens and the real gpt-oss chat template of
`fixtures/templates/gptoss.jinja`, so the student's harmony prompts render as on the real model.
No download anywhere. The session fixtures built from these (`tiny_gptoss`, `gptoss_student`,
`gptoss_checkpoint`) are in `tests/training/conftest.py`.
"""

import json
from pathlib import Path

from tests.checkpoints import fixture_meta
from tests.training.paths import FIXTURES, SONGS

HARMONY_TOKENS = ("<|startoftext|>", "<|endoftext|>", "<|start|>", "<|end|>", "<|message|>",
                  "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>")


def harmony_tokenizer(folder: Path, vocab_size: int = 1024):
    """A fast byte-level BPE tokenizer with the harmony special tokens and the gpt-oss template,
    saved to `folder` and loaded back."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from selah.chat import SYSTEM_PROMPT

    texts = [SYSTEM_PROMPT, "Analyze this song.\nTitle: Artist: Lyrics: Current date: "
             "Reasoning: low Knowledge cutoff: 2024-06 You are ChatGPT, a large language model"]
    for line in SONGS.read_text(encoding="utf-8").splitlines():
        song = json.loads(line)
        text = f"{song['title']}\n{song['artist']}\n\n{song['lyrics']}"
        texts.append(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(HARMONY_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    template = (FIXTURES / "templates" / "gptoss.jinja").read_text(encoding="utf-8")
    PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|startoftext|>",
                            eos_token="<|return|>", pad_token="<|endoftext|>",
                            chat_template=template).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def tiny_gptoss_config(vocab_size: int, hidden: int = 64, pad_token_id: int = 1):
    """A real `GptOssConfig` at toy size: 2 layers, 4 experts (top-2), 4 query / 2 kv heads."""
    from transformers import GptOssConfig

    return GptOssConfig(
        num_hidden_layers=2, num_local_experts=4, num_experts_per_tok=2, vocab_size=vocab_size,
        hidden_size=hidden, intermediate_size=hidden, head_dim=hidden // 4,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=16,
        max_position_embeddings=131072, pad_token_id=pad_token_id, use_cache=False)


def write_tiny_gptoss(folder: Path, hidden: int = 64, seed: int = 0) -> Path:
    """A random tiny `GptOssModel` (no LM head) and its harmony tokenizer, saved in `folder`."""
    import torch

    from selah.gptoss import backbone_from_config

    tokenizer = harmony_tokenizer(folder)
    torch.manual_seed(seed)
    config = tiny_gptoss_config(len(tokenizer), hidden, tokenizer.pad_token_id)
    backbone_from_config(config).save_pretrained(folder)
    return folder


def write_tiny_gptoss_student(folder: Path, hidden: int = 256, seed: int = 0,
                              data: Path = SONGS) -> Path:
    """A float student folder on a random tiny gpt-oss (harmony prompt, last-token pooling) whose
    verdict head is aimed at what differs between the fixture songs, as
    `tests/checkpoints.write_tiny_student` does for BERT."""
    import torch

    from selah.gptoss import backbone_from_config
    from selah.student import Featurizer, StudentModel, save_student

    tokenizer = harmony_tokenizer(folder)
    torch.manual_seed(seed)
    backbone = backbone_from_config(tiny_gptoss_config(len(tokenizer), hidden,
                                                       tokenizer.pad_token_id))
    model = StudentModel(backbone, pooling="last_token", dropout=0.0).eval()
    featurizer = Featurizer(tokenizer, 320, 32, prompt="harmony")
    _aim_verdict_head(model, featurizer, data)
    return save_student(model, tokenizer, folder, featurizer,
                        fixture_meta("tiny-random-gpt-oss", data, seed))


def _aim_verdict_head(model, featurizer, data: Path, spread: float = 3.0) -> None:
    """Point the verdict head at the directions the fixture songs differ in, with logits of
    about `spread` standard deviations: songs get different verdicts, not all certain ones."""
    import torch

    from selah.inference import featurize
    from training.data.readers import read_examples

    examples, _ = read_examples(data)
    with torch.no_grad():
        batch = featurize(featurizer, [e.song() for e in examples])
        pooled = model.encode(batch["input_ids"], batch["attention_mask"], batch["song_index"],
                              batch["n_songs"])
        centred = pooled - pooled.mean(0)
        head = model.heads["verdict"]
        direction = torch.randn_like(head.weight)
        scale = spread / (centred @ direction.t()).std()
        head.weight.copy_(direction * scale)
        head.bias.copy_(-head.weight @ pooled.mean(0))
