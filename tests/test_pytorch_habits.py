"""PyTorch habits carry over: small programs in everyday PyTorch style, run on `import tinytensor as torch`.

Each test is a program a PyTorch user would write without reading our docs: the lecture-style bigram model and
GPT (karpathy's ng-video-lecture), a nanoGPT-style model with weight tying and AdamW parameter groups,
micrograd's scalar checks, a classic MLP classifier, and a page of everyday idioms. Only the import lines say
`tinytensor`. What differs from PyTorch, and why, is in docs/pytorch.md.
"""
import inspect
import math
from dataclasses import dataclass

import numpy as np
import pytest

import tinytensor as torch
import tinytensor.nn as nn
from tinytensor.nn import functional as F

TEXT = ("From fairest creatures we desire increase,\nThat thereby beauty's rose might never die,\n"
        "But as the riper should by time decease,\nHis tender heir might bear his memory:\n") * 4


# ---- the lecture's bigram model -------------------------------------------------------------------------------------
def test_lecture_bigram_model_trains_evaluates_and_generates():
    batch_size, block_size, eval_iters = 8, 8, 4
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(1337)
    chars = sorted(list(set(TEXT)))
    vocab_size = len(chars)
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in TEXT], dtype=torch.long)
    n = int(0.9 * len(data))
    train_data, val_data = data[:n], data[n:]

    def get_batch(split):
        data = train_data if split == 'train' else val_data
        ix = torch.randint(len(data) - block_size, (batch_size,))
        x = torch.stack([data[i:i + block_size] for i in ix])  # a 0-d tensor as a slice bound
        y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])
        return x.to(device), y.to(device)

    class BigramLanguageModel(nn.Module):
        def __init__(self, vocab_size):
            super().__init__()
            self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

        def forward(self, idx, targets=None):
            logits = self.token_embedding_table(idx)
            if targets is None:
                return logits, None
            B, T, C = logits.shape
            return logits, F.cross_entropy(logits.view(B * T, C), targets.view(B * T))

        def generate(self, idx, max_new_tokens):
            for _ in range(max_new_tokens):
                logits, loss = self(idx)
                probs = F.softmax(logits[:, -1, :], dim=-1)
                idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
            return idx

    model = BigramLanguageModel(vocab_size)
    m = model.to(device)

    @torch.no_grad()
    def estimate_loss():
        out = {}
        model.eval()
        for split in ['train', 'val']:
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                X, Y = get_batch(split)
                logits, loss = model(X, Y)
                losses[k] = loss.item()
            out[split] = losses.mean()
        model.train()
        return out

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = estimate_loss()
    for _ in range(100):
        xb, yb = get_batch('train')
        logits, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    after = estimate_loss()
    report = f"train loss {after['train']:.4f}, val loss {after['val']:.4f}"
    assert report.startswith("train loss ") and len(report.split()[2]) == 7  # 0-d tensors format like floats
    assert after['train'] < before['train'] - 0.3
    context = torch.zeros((1, 1), dtype=torch.long, device=device)
    sample = ''.join(itos[i] for i in m.generate(context, max_new_tokens=20)[0].tolist())
    assert len(sample) == 21


# ---- the lecture's GPT ----------------------------------------------------------------------------------------------
def test_lecture_gpt_with_heads_masked_fill_and_sequential_trains_and_generates():
    torch.manual_seed(0)
    vocab_size, block_size, n_embd, n_head, dropout = 12, 8, 16, 2, 0.1

    class Head(nn.Module):
        def __init__(self, head_size):
            super().__init__()
            self.key = nn.Linear(n_embd, head_size, bias=False)
            self.query = nn.Linear(n_embd, head_size, bias=False)
            self.value = nn.Linear(n_embd, head_size, bias=False)
            self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            B, T, C = x.shape
            k, q = self.key(x), self.query(x)
            wei = q @ k.transpose(-2, -1) * C**-0.5
            wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))
            wei = self.dropout(F.softmax(wei, dim=-1))
            return wei @ self.value(x)

    class MultiHeadAttention(nn.Module):
        def __init__(self, num_heads, head_size):
            super().__init__()
            self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
            self.proj = nn.Linear(n_embd, n_embd)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            return self.dropout(self.proj(torch.cat([h(x) for h in self.heads], dim=-1)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.sa = MultiHeadAttention(n_head, n_embd // n_head)
            self.ffwd = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.ReLU(), nn.Linear(4 * n_embd, n_embd),
                                      nn.Dropout(dropout))
            self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)

        def forward(self, x):
            x = x + self.sa(self.ln1(x))
            return x + self.ffwd(self.ln2(x))

    class GPTLanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
            self.position_embedding_table = nn.Embedding(block_size, n_embd)
            self.blocks = nn.Sequential(*[Block() for _ in range(2)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab_size)

        def forward(self, idx, targets=None):
            B, T = idx.shape
            x = self.token_embedding_table(idx) + self.position_embedding_table(torch.arange(T))
            logits = self.lm_head(self.ln_f(self.blocks(x)))
            if targets is None:
                return logits, None
            B, T, C = logits.shape
            return logits, F.cross_entropy(logits.view(B * T, C), targets.view(B * T))

        def generate(self, idx, max_new_tokens):
            for _ in range(max_new_tokens):
                logits, _ = self(idx[:, -block_size:])
                probs = F.softmax(logits[:, -1, :], dim=-1)
                idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
            return idx

    model = GPTLanguageModel()
    assert sum(p.numel() for p in model.parameters()) / 1e6 < 0.01
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    pattern = torch.tensor([0, 1, 2] * 3)  # a sequence the model can learn: 0 1 2 0 1 2 ...
    xb, yb = pattern[:-1].repeat(4, 1), pattern[1:].repeat(4, 1)
    losses = []
    for _ in range(150):  # confident enough that sampling the pattern does not hinge on the random stream
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 3
    model.eval()
    out = model.generate(torch.zeros((1, 1), dtype=torch.long), max_new_tokens=12)
    assert out.shape == (1, 13) and out[0, 1:4].tolist() == [1, 2, 0]


# ---- a nanoGPT-style model -----------------------------------------------------------------------------------------
@dataclass
class GPTConfig:
    block_size: int = 8
    vocab_size: int = 16
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 8
    dropout: float = 0.0
    bias: bool = True


class LayerNorm(nn.Module):
    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config, flash=True):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.flash = flash and hasattr(torch.nn.functional, 'scaled_dot_product_attention')
        if not self.flash:
            self.register_buffer("bias", torch.tril(torch.ones(config.block_size, config.block_size))
                                 .view(1, 1, config.block_size, config.block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.flash:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None,
                                               dropout_p=self.dropout if self.training else 0, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    def __init__(self, config, flash=True):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, flash)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias), nn.GELU(),
                                 nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias),
                                 nn.Dropout(config.dropout))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config, flash=True):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, flash) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith('2.weight'):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return self.lm_head(x[:, [-1], :]), None

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        param_dict = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
        decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
        nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
        optim_groups = [{'params': decay_params, 'weight_decay': weight_decay},
                        {'params': nodecay_params, 'weight_decay': 0.0}]
        extra_args = dict(fused=True) if 'fused' in inspect.signature(torch.optim.AdamW).parameters else dict()
        return torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, **extra_args)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        for _ in range(max_new_tokens):
            idx_cond = idx if idx.size(1) <= self.config.block_size else idx[:, -self.config.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float('Inf')
            probs = F.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def test_nanogpt_style_model_ties_weights_groups_adamw_and_generates_with_top_k(tmp_path):
    torch.manual_seed(0)
    config = GPTConfig()
    model = GPT(config)
    assert model.transformer.wte.weight is model.lm_head.weight
    assert len(list(model.parameters())) == len({id(p) for p in model.parameters()})
    optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95))
    assert [g['weight_decay'] for g in optimizer.param_groups] == [0.1, 0.0]
    x = torch.randint(0, config.vocab_size, (4, config.block_size))
    y = torch.roll(x, -1, dims=1)
    y[:, -1] = -1  # ignored target
    losses = []
    for _ in range(30):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
    model.eval()
    out = model.generate(x[:1, :3], max_new_tokens=10, temperature=0.8, top_k=3)
    assert out.shape == (1, 13) and not out.requires_grad

    torch.save(model.state_dict(), tmp_path / "ckpt.safetensors")
    restored = GPT(config)
    restored.load_state_dict(torch.load(tmp_path / "ckpt.safetensors", map_location='cpu'))
    restored.eval()
    np.testing.assert_array_equal(restored(x)[0].numpy(), model(x)[0].numpy())


def test_nanogpt_manual_attention_path_equals_the_fused_one_in_float64():
    torch.manual_seed(1)
    fused = GPT(GPTConfig(), flash=True).double()
    manual = GPT(GPTConfig(), flash=False).double()
    state = fused.state_dict()
    missing, unexpected = manual.load_state_dict(state, strict=False)
    assert unexpected == [] and all(name.endswith("attn.bias") for name in missing)
    x = torch.randint(16, (2, 8))
    np.testing.assert_allclose(manual(x, x)[1].item(), fused(x, x)[1].item(), rtol=1e-13)


def test_nanogpt_pretrained_weight_copy_pattern_writes_through_the_state_dict():
    model = GPT(GPTConfig())
    sd = model.state_dict()
    conv1d_weight = torch.randn(8, 24)  # GPT-2 checkpoints store c_attn transposed
    with torch.no_grad():
        sd['transformer.h.0.attn.c_attn.weight'].copy_(conv1d_weight.t())
        sd['lm_head.weight'].copy_(torch.zeros(16, 8))
    np.testing.assert_array_equal(model.transformer.h[0].attn.c_attn.weight.numpy(), conv1d_weight.numpy().T)
    assert model.transformer.wte.weight.abs().sum().item() == 0  # tied, so written once for both


# ---- micrograd's scalar checks (its test_engine.py, with micrograd's own results written in) -------------------------
def test_micrograd_sanity_check():
    x = torch.Tensor([-4.0]).double()
    x.requires_grad = True
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    assert y.data.item() == -20.0 and x.grad.item() == 46.0


def test_micrograd_more_ops():
    a = torch.Tensor([-4.0]).double()
    b = torch.Tensor([2.0]).double()
    a.requires_grad = True
    b.requires_grad = True
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    tol = 1e-6
    assert abs(24.70408163265306 - g.data.item()) < tol
    assert abs(138.83381924198252 - a.grad.item()) < tol
    assert abs(645.5772594752186 - b.grad.item()) < tol


@pytest.mark.parametrize("name", ["tanh", "exp"])
def test_micrograd_unary_tensor_functions(name):
    for value in [-1.0, 0.123, 2.0]:
        xt = torch.Tensor([value]).double()
        xt.requires_grad = True
        yt = getattr(torch.Tensor, name)(xt)
        yt.backward()
        expected = math.tanh(value) if name == "tanh" else math.exp(value)
        slope = 1 - expected**2 if name == "tanh" else expected
        assert abs(yt.data.item() - expected) < 1e-6 and abs(xt.grad.item() - slope) < 1e-6  # via float32, as torch


# ---- a classic MLP classifier ---------------------------------------------------------------------------------------
def test_mlp_classifier_in_tutorial_style_learns_two_blobs():
    torch.manual_seed(0)
    features = torch.cat([torch.randn(64, 2) + 2, torch.randn(64, 2) - 2])
    labels = torch.cat([torch.zeros(64, dtype=torch.long), torch.ones(64, dtype=torch.long)])
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Identity(), nn.Linear(16, 2))
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, nonlinearity='tanh')
            nn.init.zeros_(layer.bias)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _epoch in range(3):
        permutation = torch.randperm(len(features))
        for start in range(0, len(features), 32):
            batch = permutation[start:start + 32]
            outputs = model(features[batch])
            loss = criterion(outputs, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        _, predicted = torch.max(model(features), 1)
        accuracy = (predicted == labels).sum().item() / labels.size(0)
    assert accuracy > 0.95 and f"{loss:.3f}" == f"{loss.item():.3f}"


def test_manual_sgd_with_mse_one_hot_targets_and_grad_zeroing():
    torch.manual_seed(0)
    inputs = torch.randn(32, 4)
    targets = F.one_hot(torch.randint(0, 3, (32,)), num_classes=3).float()
    weight = torch.empty(4, 3)
    nn.init.xavier_uniform_(weight)
    weight.requires_grad_()
    bias = torch.zeros(3, requires_grad=True)
    criterion = nn.MSELoss()
    first = None
    for _ in range(50):
        loss = criterion(inputs @ weight + bias, targets)
        first = first if first is not None else loss.item()
        loss.backward()
        with torch.no_grad():
            weight -= 0.1 * weight.grad
            bias -= 0.1 * bias.grad
            weight.grad.zero_()
            bias.grad.zero_()
    assert loss.item() < first
    assert weight.t().shape == (3, 4) and weight.is_leaf and bias.is_leaf


# ---- everyday idioms ------------------------------------------------------------------------------------------------
def test_device_and_dtype_idioms_carry_over():
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    assert torch.ones(2).to(device).device == device.type and torch.cuda.device_count() >= 0
    assert torch.device('cuda:0') == 'cuda' and torch.zeros(1, device=torch.device('cpu')).device == 'cpu'
    torch.manual_seed(1337)
    torch.cuda.manual_seed(1337)
    torch.cuda.manual_seed_all(1337)
    assert (torch.long, torch.float, torch.double, torch.half, torch.int, torch.bool) == \
           (torch.int64, torch.float32, torch.float64, torch.float16, torch.int32, torch.bool_)
    ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}['bfloat16']
    assert torch.ones(2).to(ptdtype).dtype == torch.float32  # a storage name: bf16 files load, compute is float32
    assert torch.ones(2, dtype=torch.half).dtype == torch.float16 and torch.tensor([1, 2]).float().dtype == torch.float


def test_cuda_manual_seed_leaves_the_cpu_stream_alone():
    torch.manual_seed(0)
    expected = torch.rand(3).tolist()
    torch.manual_seed(0)
    torch.cuda.manual_seed_all(123)
    assert torch.rand(3).tolist() == expected


def test_creation_and_random_idioms():
    torch.manual_seed(0)
    assert torch.randint(10, (3, 2)).shape == (3, 2) and torch.randint(5, 10, (4,)).min().item() >= 5
    assert sorted(torch.randperm(6).tolist()) == list(range(6))
    assert torch.empty(2, 3).shape == (2, 3) and torch.empty((4,), dtype=torch.long).dtype == torch.int64
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    distinct = torch.multinomial(probs, 4, replacement=False)
    assert sorted(distinct.tolist()) == [0, 1, 2, 3]
    assert torch.multinomial(probs, 10, replacement=True).shape == (10,)
    array = np.arange(6.0).reshape(2, 3)
    shared = torch.from_numpy(array)
    shared[0, 0] = 100.0
    assert array[0, 0] == 100.0 and shared.dtype == torch.float64
    weight = torch.empty(256, 64)
    nn.init.trunc_normal_(weight, std=0.02)
    assert weight.abs().max().item() <= 2.0 and abs(weight.std().item() - 0.02) < 0.005
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    nn.init.xavier_normal_(weight)


def test_tensor_idioms_index_format_iterate_transpose():
    steps = torch.tensor(3)
    assert list(range(steps)) == [0, 1, 2] and [10, 20, 30, 40][steps] == 40
    assert f"{torch.tensor(2.0):.2f}" == "2.00" and f"{torch.tensor(7)}" == "7"
    rows = [row.sum().item() for row in torch.arange(6).view(2, 3)]
    assert rows == [3, 12]
    matrix = torch.arange(6.0).view(2, 3)
    assert matrix.t().shape == (3, 2) and matrix.T.shape == (3, 2) and torch.arange(3).t().shape == (3,)
    with pytest.raises(RuntimeError, match="view"):
        matrix.t().view(6)  # PyTorch refuses this view too
    assert matrix.t().reshape(6).tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    assert matrix.t().contiguous().view(6).tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


def test_sampling_idioms_top_p_with_sort_and_cumsum():
    logits = torch.tensor([[2.0, 1.0, 0.1, -1.0, 3.0]])
    sorted_logits, sorted_indices = torch.sort(logits, descending=True)
    cumulative_probs = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    keep = cumulative_probs - F.softmax(sorted_logits, dim=-1) < 0.9
    kept_ids = sorted_indices[keep]
    assert kept_ids.tolist() == [4, 0, 1] and torch.argsort(logits, dim=-1)[0, -1].item() == 4


def test_math_idioms_einsum_std_var_repeat_roll_normalize():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 4, dtype=torch.double), torch.randn(2, 5, 4, dtype=torch.double)
    np.testing.assert_allclose(torch.einsum('bqd,bkd->bqk', q, k).numpy(), (q @ k.transpose(1, 2)).numpy(),
                               rtol=1e-13)
    x = torch.randn(4, 6, dtype=torch.double)
    np.testing.assert_allclose(x.std(dim=1).numpy(), x.numpy().std(axis=1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(x.var(dim=1, unbiased=False).numpy(), x.numpy().var(axis=1), rtol=1e-12)
    assert x.repeat(2, 1).shape == (8, 6) and torch.roll(torch.arange(4), 1).tolist() == [3, 0, 1, 2]
    embeddings = F.normalize(torch.randn(3, 8), dim=-1)
    cosine = embeddings @ embeddings.t()
    np.testing.assert_allclose(np.diag(cosine.numpy()), np.ones(3), rtol=1e-6)


def test_parameter_list_hooks_and_inference_mode():
    class Mixture(nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = nn.ParameterList([nn.Parameter(torch.ones(2)) for _ in range(3)])

        def forward(self, x):
            for w in self.weights:
                x = x * w
            return x.sum()

    model = Mixture()
    assert len(list(model.parameters())) == 3 and list(model.state_dict()) == ["weights.0", "weights.1", "weights.2"]
    model.weights[0].register_hook(lambda grad: grad * 0)  # freeze one factor through its gradient
    model(torch.tensor([1.0, 2.0])).backward()
    assert model.weights[0].grad.tolist() == [0.0, 0.0] and model.weights[1].grad.tolist() == [1.0, 2.0]
    with torch.inference_mode():
        assert not model(torch.ones(2)).requires_grad


def test_save_and_load_a_tensor_a_nanogpt_checkpoint_and_refuse_what_would_need_pickle(tmp_path):
    path = tmp_path / "x.safetensors"
    torch.save(torch.arange(4), path)
    assert torch.load(path).tolist() == [0, 1, 2, 3]
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": 5,
                  "model_args": {"n_layer": 2, "bias": True, "dropout": None}, "best_val_loss": torch.tensor(1.25),
                  "config": {"learning_rate": 6e-4, "dataset": "shakespeare_char", "max": float("inf")}}
    torch.save(checkpoint, tmp_path / "ckpt.pt")
    back = torch.load(tmp_path / "ckpt.pt", map_location="cpu")
    assert back["iter_num"] == 5 and back["model_args"] == checkpoint["model_args"]
    assert back["config"] == checkpoint["config"] and back["best_val_loss"].item() == 1.25
    restored = nn.Linear(3, 2)
    restored.load_state_dict(back["model"])
    again = torch.optim.AdamW(restored.parameters(), lr=1.0)
    again.load_state_dict(back["optimizer"])               # int keys of "state" and the betas tuple survive
    assert again.param_groups[0]["betas"] == (0.9, 0.95) and again.param_groups[0]["lr"] == 1e-3
    assert restored.weight.tolist() == model.weight.tolist() and sorted(back["optimizer"]["state"]) == [0, 1]
    with pytest.raises(TypeError, match="never pickle"):
        torch.save({"model": model}, tmp_path / "checkpoint.pt")


def test_indexing_idioms_gather_scatter_index_select_and_modular_arithmetic():
    logits = torch.randn(4, 6, requires_grad=True)
    targets = torch.tensor([1, 5, 0, 3])
    picked = logits.gather(1, targets.unsqueeze(1)).squeeze(1)          # the target logit of every row
    one_hot = torch.zeros_like(logits).scatter_(1, targets.unsqueeze(1), 1.0)
    np.testing.assert_allclose(picked.detach().numpy(), (logits * one_hot).sum(dim=1).detach().numpy(), rtol=1e-6)
    counts = torch.zeros(6).scatter_add(0, targets, torch.ones(4))    # a histogram of the labels
    assert counts.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    rows = logits.index_select(0, torch.tensor([3, 0]))
    picked.sum().backward()
    assert logits.grad.tolist() == one_hot.tolist() and rows.shape == (2, 6)
    step = torch.arange(10)
    assert (step % 4).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1] and (step // 4).tolist()[-3:] == [1, 2, 2]
    assert torch.fmod(torch.tensor([-3.0, 3.0]), 2).tolist() == [-1.0, 1.0]
    bias = torch.zeros(6).expand_as(logits)
    assert bias.shape == logits.shape and logits.view_as(one_hot.t().contiguous()).shape == (6, 4)


# ---- makemore (karpathy's "Neural Networks: Zero to Hero", parts 1 to 4) ------------------------------------------
NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper", "evelyn"]


def makemore_vocabulary():
    chars = sorted(set("".join(NAMES)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    return stoi, {i: s for s, i in stoi.items()}


def test_makemore_bigram_counts_and_one_layer_network_with_a_generator():
    stoi, itos = makemore_vocabulary()
    V = len(stoi)
    N = torch.zeros((V, V), dtype=torch.int32)
    for w in NAMES:
        chs = ["."] + list(w) + ["."]
        for ch1, ch2 in zip(chs, chs[1:]):
            N[stoi[ch1], stoi[ch2]] += 1                   # element update through a 0-d index
    assert N[stoi["."], stoi["e"]].item() == 2 and N.sum().item() == sum(len(w) + 1 for w in NAMES)
    P = (N + 1).float()
    P /= P.sum(1, keepdims=True)
    g = torch.Generator().manual_seed(2147483647)
    names = []
    for _ in range(3):
        ix, out = 0, []
        while True:
            ix = torch.multinomial(P[ix], num_samples=1, replacement=True, generator=g).item()
            out.append(itos[ix])
            if ix == 0:
                break
        names.append("".join(out))
    g.manual_seed(2147483647)                              # the same seed replays the same draws
    again = torch.multinomial(P[0], num_samples=1, replacement=True, generator=g).item()
    assert again == stoi[names[0][0]]

    xs, ys = [], []
    for w in NAMES:
        chs = ["."] + list(w) + ["."]
        for ch1, ch2 in zip(chs, chs[1:]):
            xs.append(stoi[ch1])
            ys.append(stoi[ch2])
    xs, ys = torch.tensor(xs), torch.tensor(ys)
    W = torch.randn((V, V), generator=g, requires_grad=True)
    losses = []
    for _ in range(20):
        xenc = F.one_hot(xs, num_classes=V).float()
        counts = (xenc @ W).exp()
        probs = counts / counts.sum(1, keepdims=True)
        loss = -probs[torch.arange(xs.nelement()), ys].log().mean() + 0.01 * (W**2).mean()
        losses.append(loss.item())
        W.grad = None
        loss.backward()
        W.data += -10 * W.grad                             # the raw array is updated in place
    assert losses[-1] < losses[0] and isinstance(W.data, np.ndarray)


def test_makemore_mlp_with_batchnorm_generator_and_manual_sgd_on_data():
    stoi, itos = makemore_vocabulary()
    block_size, V = 3, len(stoi)
    X, Y = [], []
    for w in NAMES * 5:
        context = [0] * block_size
        for ch in w + ".":
            X.append(context)
            Y.append(stoi[ch])
            context = context[1:] + [stoi[ch]]
    X, Y = torch.tensor(X), torch.tensor(Y)
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((V, 10), generator=g)
    W1 = torch.randn((30, 64), generator=g) * (5 / 3) / 30**0.5
    W2 = torch.randn((64, V), generator=g) * 0.01
    b2 = torch.randn(V, generator=g) * 0
    bngain, bnbias = torch.ones((1, 64)), torch.zeros((1, 64))
    bnmean_running, bnstd_running = torch.zeros((1, 64)), torch.ones((1, 64))
    parameters = [C, W1, W2, b2, bngain, bnbias]
    for p in parameters:
        p.requires_grad = True
    assert sum(p.nelement() for p in parameters) == V * 10 + 30 * 64 + 64 * V + V + 128
    first = None
    for _ in range(60):
        ix = torch.randint(0, X.shape[0], (32,), generator=g)
        emb = C[X[ix]]
        hpreact = emb.view(emb.shape[0], -1) @ W1
        bnmeani, bnstdi = hpreact.mean(0, keepdim=True), hpreact.std(0, keepdim=True)
        hpreact = bngain * (hpreact - bnmeani) / bnstdi + bnbias
        with torch.no_grad():
            bnmean_running = 0.999 * bnmean_running + 0.001 * bnmeani
            bnstd_running = 0.999 * bnstd_running + 0.001 * bnstdi
        loss = F.cross_entropy(torch.tanh(hpreact) @ W2 + b2, Y[ix])
        first = first if first is not None else loss.item()
        for p in parameters:
            p.grad = None
        loss.backward()
        for p in parameters:
            p.data += -0.1 * p.grad
    assert loss.item() < first and not bnmean_running.requires_grad

    @torch.no_grad()
    def sample(seed):
        g = torch.Generator().manual_seed(seed)
        out, context = [], [0] * block_size
        while len(out) < 12:
            h = torch.tanh(bngain * (C[torch.tensor([context])].view(1, -1) @ W1 - bnmean_running) / bnstd_running
                           + bnbias)
            ix = torch.multinomial(F.softmax(h @ W2 + b2, dim=1), num_samples=1, generator=g).item()
            context = context[1:] + [ix]
            out.append(ix)
            if ix == 0:
                break
        return "".join(itos[i] for i in out)

    assert sample(2147483647 + 10) == sample(2147483647 + 10)


def test_makemore_backprop_ninja_manual_gradients_match_autograd():
    g = torch.Generator().manual_seed(2147483647)
    n, V = 8, 5
    logits = torch.randn((n, V), generator=g, dtype=torch.double, requires_grad=True)
    Yb = torch.randint(0, V, (n,), generator=g)
    logit_maxes = logits.max(1, keepdim=True).values
    norm_logits = logits - logit_maxes
    counts = norm_logits.exp()
    counts_sum_inv = counts.sum(1, keepdims=True) ** -1
    probs = counts * counts_sum_inv
    loss = -probs.log()[range(n), Yb].mean()
    loss.backward()
    dlogits = F.softmax(logits, 1).detach()
    dlogits[range(n), Yb] -= 1                             # fancy-index update on a plain tensor
    dlogits /= n
    assert (dlogits - logits.grad).abs().max().item() < 1e-12
    np.testing.assert_allclose(dlogits.numpy(), logits.grad.numpy(), rtol=0, atol=1e-12)


def test_a_generator_is_its_own_stream_and_lives_on_one_device():
    torch.manual_seed(0)
    shared = torch.randn(3)
    g = torch.Generator().manual_seed(7)
    mine = torch.randn(3, generator=g)
    torch.manual_seed(0)
    assert torch.randn(3).tolist() == shared.tolist()      # drawing from g left the shared stream alone
    assert torch.randn(3, generator=torch.Generator().manual_seed(7)).tolist() == mine.tolist()
    state = g.get_state()
    after = torch.rand(2, generator=g)
    assert torch.rand(2, generator=g.set_state(state)).tolist() == after.tolist()
    assert g.initial_seed() == 7 and torch.Generator().initial_seed() == 67280421310721
    with pytest.raises(TypeError, match="generator must be a tinytensor Generator"):
        torch.randn(2, generator=np.random.default_rng(0))
    weights = torch.empty(4, 4)
    nn.init.normal_(weights, generator=torch.Generator().manual_seed(1))
    assert weights.tolist() == nn.init.normal_(torch.empty(4, 4), generator=torch.Generator().manual_seed(1)).tolist()


def test_numpy_arrays_meet_tensors_as_pytorch_users_expect():
    array, t = np.ones(3, dtype=np.float32), torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    product = array * t                                    # ndarray ∘ Tensor is the Tensor op
    assert isinstance(product, torch.Tensor) and product.requires_grad and (array < t).tolist() == [False, True, True]
    before = array
    array += -0.5 * t                                      # in place into the array: values only, no graph
    assert array is before and array.tolist() == [0.5, 0.0, -0.5]
    with pytest.raises(TypeError):
        np.exp(t)                                          # call torch.exp, or .numpy() first


def test_numpy_and_plotting_read_cpu_tensors_and_refuse_device_ones(device):
    t = torch.tensor([[1.0, -2.0], [3.0, 4.0]], device=device, requires_grad=True)
    if device == "cpu":
        assert np.asarray(t).tolist() == [[1.0, -2.0], [3.0, 4.0]] and np.asarray(t.abs() > 2).dtype == np.bool_
        assert np.array(t, dtype=np.float64).dtype == np.float64 and np.array(t, copy=True) is not t.data
    else:
        with pytest.raises(TypeError, match="call .cpu"):
            np.asarray(t)                                  # an implicit device-to-host copy would hide a transfer
    assert np.asarray(t.cpu()).shape == (2, 2)


# ---- "Learning PyTorch with Examples" (the official tutorial's polynomial fits) -----------------------------------
class LegendrePolynomial3(torch.autograd.Function):
    """The tutorial's custom autograd Function: P3(x) = ½(5x³ − 3x), P3'(x) = 3/2·(5x² − 1)."""

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


def test_tutorial_custom_autograd_function_fits_a_polynomial_with_manual_updates():
    dtype, device = torch.float, torch.device("cpu")
    x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
    y = torch.sin(x)
    a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
    c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)
    losses = []
    for _ in range(1000):
        P3 = LegendrePolynomial3.apply
        loss = (a + b * P3(c + d * x) - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            for p in (a, b, c, d):
                p -= 5e-6 * p.grad
                p.grad = None
    assert losses[-1] < losses[0] / 20                    # the tutorial's fit: 462 → below 12 (~9 at 2000 steps)


def test_tutorial_nn_sequential_polynomial_with_flatten_mse_sum_and_rmsprop():
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
    loss_fn = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(500):
        loss = loss_fn(model(xx), y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    linear_layer = model[0]
    assert losses[-1] < losses[0] / 10 and xx.shape == (2000, 3)
    assert -0.2 < linear_layer.weight[:, 2].item() < 0 and isinstance(linear_layer.bias.item(), float)


def test_a_custom_function_has_first_and_second_derivatives_and_sees_non_tensor_arguments():
    needs = []

    class Scale(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, factor, bias):
            ctx.factor = factor
            needs.append(ctx.needs_input_grad)
            return input * factor + bias

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output * ctx.factor, None, None

    z = torch.tensor([0.3, -0.7], dtype=torch.double, requires_grad=True)
    assert torch.gradcheck(LegendrePolynomial3.apply, (z,)) and torch.gradgradcheck(LegendrePolynomial3.apply, (z,))
    assert z.grad is None                                  # gradcheck leaves .grad alone, as PyTorch's does
    slope, = torch.autograd.grad(LegendrePolynomial3.apply(z).sum(), z, create_graph=True)
    slope.sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), 15 * z.detach().numpy(), rtol=1e-12)
    out = Scale.apply(z, 3.0, torch.ones(2))
    out.sum().backward()
    assert out.grad_fn is not None and z.grad.tolist() == pytest.approx((15 * z.detach() + 3).tolist())
    with torch.no_grad():
        assert not Scale.apply(z, 2.0, 0.0).requires_grad
    assert needs == [(True, False, False), (False, False, False)]
    with pytest.raises(TypeError, match="must return one Tensor"):
        Scale.forward = staticmethod(lambda ctx, input, factor, bias: (input, input))
        Scale.apply(z, 1.0, 0.0)


def test_tensor_methods_name_the_operators_and_linspace_matches_numpy():
    x = torch.tensor([1.0, 2.0, 3.0])
    assert x.add(x, alpha=2).tolist() == [3.0, 6.0, 9.0] and x.sub(1).tolist() == [0.0, 1.0, 2.0]
    assert x.mul(x).tolist() == x.pow(2).tolist() == [1.0, 4.0, 9.0] and x.neg().tolist() == [-1.0, -2.0, -3.0]
    assert x.div(2, rounding_mode="floor").tolist() == [0.0, 1.0, 1.0] and x.true_divide(2).tolist() == [0.5, 1, 1.5]
    big = torch.tensor([-7, 7, 2**62 + 1])
    assert big.div(2, rounding_mode="trunc").tolist() == [-3, 3, 2**61]
    assert (-x).div(2, rounding_mode="trunc").tolist() == [-0.0, -1.0, -1.0]
    assert x.gt(1.5).tolist() == [False, True, True] and x.where(x > 1.5, 0.0).tolist() == [0.0, 2.0, 3.0]
    assert x.matmul(x).item() == 14.0 and x.maximum(torch.full((3,), 2.0)).tolist() == [2.0, 2.0, 3.0]
    np.testing.assert_array_equal(torch.linspace(-math.pi, math.pi, 7).numpy(),
                                  np.linspace(-math.pi, math.pi, 7).astype(np.float32))
    assert torch.logspace(0, 2, 3).tolist() == [1.0, 10.0, 100.0] and torch.linspace(0, 1, 1).tolist() == [0.0]


# ---- minGPT (karpathy/minGPT's model.py and trainer, on its sorting demo) -------------------------------------------
from tinytensor.utils.data import Dataset  # noqa: E402 - the programs above need only the top-level imports
from tinytensor.utils.data.dataloader import DataLoader  # noqa: E402


class NewGELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

class MinGPTAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.attn_dropout = nn.Dropout(0.1)
        self.resid_dropout = nn.Dropout(0.1)
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))
        self.n_head, self.n_embd = n_head, n_embd
    def forward(self, x):
        B, T, C = x.size()
        q, k ,v  = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:,:,:T,:T] == 0, float('-inf'))
        att = F.softmax(att, dim=-1)
        att = self.attn_dropout(att)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))

class MinGPTBlock(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = MinGPTAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(n_embd, 4 * n_embd), c_proj=nn.Linear(4 * n_embd, n_embd),
                                      act=NewGELU(), dropout=nn.Dropout(0.1)))
        m = self.mlp
        self.mlpf = lambda x: m.dropout(m.c_proj(m.act(m.c_fc(x))))
    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlpf(self.ln_2(x))

class MinGPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer=2, n_head=2, n_embd=16):
        super().__init__()
        self.block_size = block_size
        self.transformer = nn.ModuleDict(dict(
            wte = nn.Embedding(vocab_size, n_embd), wpe = nn.Embedding(block_size, n_embd), drop = nn.Dropout(0.1),
            h = nn.ModuleList([MinGPTBlock(n_embd, n_head, block_size) for _ in range(n_layer)]),
            ln_f = nn.LayerNorm(n_embd)))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith('c_proj.weight'):
                torch.nn.init.normal_(p, mean=0.0, std=0.02/math.sqrt(2 * n_layer))
        n_params = sum(p.numel() for p in self.transformer.parameters())
        self.n_params = n_params
    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            torch.nn.init.zeros_(module.bias)
            torch.nn.init.ones_(module.weight)
    def configure_optimizers(self, lr, weight_decay):
        decay, no_decay = set(), set()
        whitelist_weight_modules = (torch.nn.Linear, )
        blacklist_weight_modules = (torch.nn.LayerNorm, torch.nn.Embedding)
        for mn, m in self.named_modules():
            for pn, _ in m.named_parameters():
                fpn = f'{mn}.{pn}' if mn else pn
                if pn.endswith('bias'):
                    no_decay.add(fpn)
                elif pn.endswith('weight') and isinstance(m, whitelist_weight_modules):
                    decay.add(fpn)
                elif pn.endswith('weight') and isinstance(m, blacklist_weight_modules):
                    no_decay.add(fpn)
        param_dict = {pn: p for pn, p in self.named_parameters()}
        inter_params = decay & no_decay
        union_params = decay | no_decay
        assert len(inter_params) == 0
        assert len(param_dict.keys() - union_params) == 0, str(param_dict.keys() - union_params)
        optim_groups = [
            {"params": [param_dict[pn] for pn in sorted(list(decay))], "weight_decay": weight_decay},
            {"params": [param_dict[pn] for pn in sorted(list(no_decay))], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(optim_groups, lr=lr, betas=(0.9, 0.95))
    def forward(self, idx, targets=None):
        device = idx.device
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=device).unsqueeze(0)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss
    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, do_sample=False, top_k=None):
        for _ in range(max_new_tokens):
            idx_cond = idx if idx.size(1) <= self.block_size else idx[:, -self.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, top_k)
                logits[logits < v[:, [-1]]] = -float('Inf')
            probs = F.softmax(logits, dim=-1)
            if do_sample:
                idx_next = torch.multinomial(probs, num_samples=1)
            else:
                _, idx_next = torch.topk(probs, k=1, dim=-1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx

class SortDataset(Dataset):
    def __init__(self, split, length=6, num_digits=3):
        self.split, self.length, self.num_digits = split, length, num_digits
    def __len__(self):
        return 10000
    def get_vocab_size(self):
        return self.num_digits
    def get_block_size(self):
        return self.length * 2 - 1
    def __getitem__(self, idx):
        inp = torch.randint(self.num_digits, size=(self.length,), dtype=torch.long)
        sol = torch.sort(inp)[0]
        cat = torch.cat((inp, sol), dim=0)
        x = cat[:-1].clone()
        y = cat[1:].clone()
        y[:self.length-1] = -1
        return x, y


def test_mingpt_learns_to_sort_with_its_trainer_loop_and_generates():
    torch.manual_seed(3407)
    train_dataset = SortDataset("train")
    model = MinGPT(train_dataset.get_vocab_size(), train_dataset.get_block_size())
    optimizer = model.configure_optimizers(5e-3, 0.1)
    train_loader = DataLoader(train_dataset, shuffle=False, pin_memory=True, batch_size=32, num_workers=0,
                              sampler=torch.utils.data.RandomSampler(train_dataset, replacement=True,
                                                                     num_samples=int(1e10)))
    model.train()
    data_iter = iter(train_loader)
    losses = []
    for _ in range(100):
        x, y = next(data_iter)
        logits, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < sum(losses[:10]) / 3 and model.n_params > 0
    model.eval()
    inp = torch.tensor([[0, 0, 2, 1, 0, 1]], dtype=torch.long)
    assert model.generate(inp, 6, do_sample=False)[0, 6:].tolist() == [0, 0, 0, 1, 1, 2]
    assert model.generate(inp, 3, do_sample=True, top_k=2).shape == (1, 9)


# ---- script-level habits (nanoGPT's train.py and the tutorials' training loops) --------------------------------------
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the deliberately overflowing step
def test_nanogpt_train_loop_with_autocast_and_a_grad_scaler_skips_only_bad_steps():
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(1337)
    model = torch.compile(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scaler = torch.cuda.amp.GradScaler(enabled=True, init_scale=2.0**10, growth_interval=3)
    ctx = torch.amp.autocast(device_type="cpu", dtype=torch.bfloat16)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    scales, losses = [], []
    for step in range(8):
        with ctx:
            loss = F.mse_loss(model(x), y)
        if step == 4:
            loss = loss * float("inf")                     # an overflowing step: skipped, scale backed off
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        before = [p.detach().clone() for p in model.parameters()]
        if step != 4:
            assert torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9).item() == pytest.approx(
                sum((p.grad ** 2).sum().item() for p in model.parameters()) ** 0.5, rel=1e-5)  # true, unscaled norm
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        moved = any((p - b).abs().max().item() > 0 for p, b in zip(model.parameters(), before))
        assert moved == (step != 4)
        scales.append(scaler.get_scale())
        losses.append(loss.item())
    assert scales == [2.0**10, 2.0**10, 2.0**11, 2.0**11, 2.0**10, 2.0**10, 2.0**10, 2.0**11]
    assert losses[-1] < losses[0]
    assert torch.cuda.amp.GradScaler(enabled=False).scale(loss) is loss


def test_grad_mode_dtype_and_device_switches_of_training_scripts():
    x = torch.ones(2, requires_grad=True)
    for phase in ("train", "val"):
        with torch.set_grad_enabled(phase == "train"):
            assert (x * 2).requires_grad == (phase == "train")
    torch.set_grad_enabled(False)
    assert not (x * 2).requires_grad
    torch.set_grad_enabled(True)
    assert (x * 2).requires_grad
    torch.set_default_dtype(torch.float64)
    try:
        assert torch.tensor([1.5]).dtype == torch.float64 == torch.get_default_dtype()
        assert torch.randn(2).dtype == torch.double
    finally:
        torch.set_default_dtype(torch.float32)
    assert torch.tensor([1.5]).dtype == torch.float32
    assert x.to("cpu") is x and x.to(torch.float64).dtype == torch.float64 and x.to("cpu", torch.float64).requires_grad
    assert x.to(device="cpu", dtype=torch.double, non_blocking=True).dtype == torch.double
    assert x.to(torch.zeros(1, dtype=torch.double)).dtype == torch.double and x.to("cpu", copy=True) is not x
    assert x.pin_memory() is x and not x.is_cuda and x.is_floating_point()
    assert torch.is_tensor(x) and torch.numel(x) == 2
    assert torch.finfo(torch.float32).eps == np.finfo(np.float32).eps and torch.iinfo(torch.int8).max == 127
    assert torch.tensor([1, 2], dtype=torch.uint8).dtype == torch.uint8 and not torch.backends.mps.is_available()
    assert torch.compile(x) is x and torch.compile(mode="max-autotune")(len) is len
    torch.cuda.set_device(0)
    with pytest.raises(ValueError, match="one GPU per process"):
        torch.cuda.set_device(1)
    torch.cuda.empty_cache()                               # nothing to free without a GPU, as in PyTorch


def test_a_generator_draws_on_its_own_device_and_refuses_another(device):
    first = torch.randn(3, generator=torch.Generator(device).manual_seed(1), device=device)
    again = torch.randn(3, generator=torch.Generator(device).manual_seed(1), device=device)
    assert first.device == device and first.tolist() == again.tolist()
    other = "cpu" if device != "cpu" else None
    if other is not None:
        with pytest.raises(ValueError, match=f"a generator on cpu cannot draw a tensor on {device}"):
            torch.randn(3, generator=torch.Generator("cpu"), device=device)
    assert torch.multinomial(torch.ones(4, device=device), 2, generator=torch.Generator(device)).device == device
