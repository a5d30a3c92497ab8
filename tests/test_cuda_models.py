"""Every model, its generation and its save/load on 'cuda': a real GPU, or the strict CuPy stand-in
(`pytest --cupy-standin`, which tests/test_cuda_standin.py runs inside the default `pytest`).

Host inputs (lists, NumPy arrays) given to a model's entry points go to the model's device; device Tensors are
used as they are. The stand-in refuses implicit host conversions outright, so a passing test had none; the
`cupy_counts` tests also bound the device-to-host synchronisations (one per training step: the logged loss).
"""
import numpy as np
import pytest

import tinytensor as tt
from models.albert import AlbertConfig, AlbertForPreTraining
from models.bert import BertConfig, BertForPreTraining, masked_lm_loss
from models.deberta import DebertaConfig, DebertaForMaskedLM
from models.gpt2 import GPT2Config, GPT2LMHeadModel
from models.gpt_char import GPT, GPTConfig
from models.llama import LlamaConfig, LlamaForCausalLM
from models.transformer import Transformer, TransformerConfig
from tinytensor.optim import AdamW

pytestmark = pytest.mark.gpu
VOCAB, BATCH, TIME = 11, 2, 6
ENCODER = dict(vocab_size=VOCAB, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
               max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def causal_loss(model, ids, labels):
    return model.loss(model(ids), labels)


def char_loss(model, ids, labels):
    return model(ids, labels)[1]


def bert_loss(model, ids, labels):
    mlm_logits, pair_logits = model(ids, attention_mask=np.ones((BATCH, TIME), dtype=np.int64))
    return model.loss(mlm_logits, pair_logits, labels, np.array([0, 1]))


def deberta_loss(model, ids, labels):
    return masked_lm_loss(model(ids), labels)


def translation_loss(model, ids, labels):
    return model.loss(model(ids, labels), labels)


MODELS = {
    "gpt_char": (lambda: GPT(GPTConfig(vocab_size=VOCAB, block_size=TIME, n_layer=2, n_head=2, n_embd=8,
                                       dropout=0.0)), char_loss),
    "gpt2": (lambda: GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=8, n_layer=2, n_head=2)),
             causal_loss),
    "llama": (lambda: LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=8, intermediate_size=12,
                                                   num_hidden_layers=2, num_attention_heads=2,
                                                   num_key_value_heads=1, max_position_embeddings=16)),
              causal_loss),
    "bert": (lambda: BertForPreTraining(BertConfig(**ENCODER)), bert_loss),
    "albert": (lambda: AlbertForPreTraining(AlbertConfig(**ENCODER, embedding_size=4)), bert_loss),
    "deberta": (lambda: DebertaForMaskedLM(DebertaConfig(**ENCODER, relative_attention=True,
                                                         pos_att_type=["c2p", "p2c"], max_relative_positions=4)),
                deberta_loss),
    "transformer": (lambda: Transformer(TransformerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, d_model=8,
                                                          n_heads=2, d_ff=12, n_encoder_layers=1,
                                                          n_decoder_layers=1, dropout=0.0)), translation_loss),
}


def batch(rng, on_device: bool):
    """ids and labels [B, T]: NumPy arrays (host inputs) or Tensors already on 'cuda'."""
    ids, labels = rng.integers(3, VOCAB, (BATCH, TIME)), rng.integers(3, VOCAB, (BATCH, TIME))
    return (tt.tensor(ids, device="cuda"), tt.tensor(labels, device="cuda")) if on_device else (ids, labels)


@pytest.mark.parametrize("on_device", [False, True], ids=["host-inputs", "device-inputs"])
@pytest.mark.parametrize("name", MODELS)
def test_every_model_trains_on_cuda_from_host_or_device_inputs(name, on_device):
    build, loss_of = MODELS[name]
    model = build().to("cuda")
    optimizer = AdamW(model.parameters(), lr=1e-2)
    ids, labels = batch(np.random.default_rng(0), on_device)
    losses = []
    for _ in range(2):
        loss = loss_of(model, ids, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(p.device == "cuda" for p in model.parameters())
    assert np.isfinite(losses).all() and losses[1] < losses[0]


@pytest.mark.parametrize("name", MODELS)
def test_a_training_step_synchronises_once_for_the_logged_loss(name, cupy_counts):
    build, loss_of = MODELS[name]
    model = build().to("cuda")
    optimizer = AdamW(model.parameters(), lr=1e-2)
    ids, labels = batch(np.random.default_rng(0), on_device=True)
    loss_of(model, ids, labels).backward()  # warm up (AdamW creates its state)
    optimizer.step()
    optimizer.zero_grad()
    cupy_counts.clear()
    loss = loss_of(model, ids, labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    loss.item()
    syncs = {kind: n for kind, n in cupy_counts.items() if kind != "upload"}
    assert syncs == {"get": 1}, syncs


def test_a_tensor_on_the_wrong_device_is_an_error_not_a_silent_copy():
    model = MODELS["gpt2"][0]().to("cuda")
    with pytest.raises(RuntimeError, match="cpu.*cuda"):
        model(tt.tensor([[1, 2, 3]]))


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_generation_on_cuda_accepts_lists_and_does_not_sync_per_token(name, cupy_counts):
    model = MODELS[name][0]().to("cuda")
    prompt = [[1, 2, 3], [4, 5, 6]]
    model.generate(prompt, max_new_tokens=2)  # warm up
    cupy_counts.clear()
    ids = model.generate(prompt, max_new_tokens=8, top_k=4)
    assert ids.device == "cuda" and ids.shape == (2, 11)
    assert sum(n for kind, n in cupy_counts.items() if kind != "upload") == 0, dict(cupy_counts)
    masked = model.generate(np.array(prompt), max_new_tokens=3, attention_mask=np.array([[0, 1, 1], [1, 1, 1]]))
    assert masked.shape == (2, 6)


def test_char_gpt_generates_on_cuda_from_numpy_ids():
    model = MODELS["gpt_char"][0]().to("cuda")
    assert model.generate(np.array([[1, 2]]), max_new_tokens=7).shape == (1, 9)


def test_translation_decodes_greedily_and_by_beam_search_on_cuda():
    model = MODELS["transformer"][0]().to("cuda")
    src = np.array([[3, 4, 5, 2, 0], [6, 7, 2, 0, 0]])
    greedy = model.greedy_decode(src, max_new_tokens=5)
    assert model.beam_search(src, beam_size=1, max_new_tokens=5) == greedy
    assert len(model.beam_search(tt.tensor(src, device="cuda"), beam_size=3, max_new_tokens=5)) == 2


def test_out_of_range_ids_on_cuda_raise_at_the_next_transfer_without_a_sync_of_their_own(cupy_counts):
    model = MODELS["gpt2"][0]().to("cuda")
    ids = tt.tensor([[1, VOCAB + 3]], device="cuda")
    logits = model(ids)
    assert sum(n for kind, n in cupy_counts.items() if kind != "upload") == 0
    with pytest.raises(IndexError, match=f"vocabulary of size {VOCAB}"):
        logits.sum().item()
    assert np.isfinite(model(tt.tensor([[1, 2]], device="cuda")).sum().item())  # the failed check was consumed


def test_out_of_range_targets_on_cuda_raise_at_the_next_transfer():
    logits = tt.zeros(2, 3, device="cuda")
    loss = tt.nn.functional.cross_entropy(logits, np.array([1, 7]))
    with pytest.raises(IndexError, match="3 classes"):
        loss.item()


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert", "deberta"])
def test_save_and_load_on_cuda_round_trip(name, tmp_path):
    model = MODELS[name][0]().to("cuda")
    model.save_pretrained(tmp_path)
    assert all(p.device == "cuda" for p in model.parameters())  # saving does not move the model (DeZero's trap)
    loaded = type(model).from_pretrained(tmp_path, dtype=tt.float32).to("cuda")
    for (key, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=key)
