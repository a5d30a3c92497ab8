"""The project's tokenizers: turning text into integer ids and back.

Each tokenizer offers ``encode``/``decode`` and a ``vocab_size``. Nothing is ever pickled:

- ``CharTokenizer`` persists as one JSON file through ``to_dict``/``from_dict`` and ``save``/``load``; the saved
  dictionary carries a ``"type"`` key naming the tokenizer kind so that files from different tokenizers cannot be
  confused.
- ``ByteLevelBPETokenizer`` (GPT-2's tokenizer) reads and writes the files a Hugging Face checkpoint directory carries,
  ``vocab.json`` and ``merges.txt``, and can learn its merges from text.
- ``WordPieceTokenizer`` (BERT's tokenizer) reads and writes ``vocab.txt`` (with ``tokenizer_config.json``) and
  encodes single texts, pairs and padded batches as Hugging Face's BertTokenizer does.
- ``SentencePieceTokenizer`` (ALBERT, T5, DeBERTa-v3: Unigram; LLaMA: BPE with byte fallback) reads a SentencePiece
  ``.model`` file (``spiece.model``, ``spm.model``, ``tokenizer.model``) or the model of a ``tokenizer.json``, and
  gives the ids of the ``sentencepiece`` library (of ``tokenizers`` for a tokenizer.json).
"""

from models.tokenizers.byte_level_bpe import (DEFAULT_SPECIAL_TOKEN, GPT2_SPLIT_PATTERN, ByteLevelBPETokenizer,
                                              bytes_to_unicode, pretokenize)
from models.tokenizers.char import CharTokenizer
from models.tokenizers.sentencepiece import SentencePieceTokenizer
from models.tokenizers.wordpiece import WordPieceTokenizer, basic_tokenize
