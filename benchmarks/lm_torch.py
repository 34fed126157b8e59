"""The PyTorch contestants of ``lm_throughput.py``: nanoGPT's architecture and AdamW,
written for the benchmark (PyTorch is an optional peer, imported only when used).

``torch_gpt`` has the same parameters and initialization as optlab's GPT (GPT-2's: N(0,
0.02), residual projections scaled by 1/√(2·n_layer), the head tied to the token
embedding); ``Torch`` trains it with ``torch.optim.AdamW`` on the recipe's decay groups and
per-step learning rates; ``torch_matmul`` is the matmul probe on torch's side.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lm_throughput import AdamW, Size


def torch_gpt(size: Size, vocab: int):
    """nanoGPT's ``GPT`` (model.py) at ``size``: the same parameters as optlab's GPT."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    d, h = size.d_model, size.n_head

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = (
                z.view(b, t, h, d // h).transpose(1, 2) for z in self.c_attn(x).split(d, dim=2)
            )
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, d))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(d), Attention(), nn.LayerNorm(d)
            self.mlp = nn.Sequential(
                nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d)
            )

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(size.block, d)
            self.blocks = nn.ModuleList(Block() for _ in range(size.n_layer))
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, vocab, bias=False)
            self.lm_head.weight = self.wte.weight  # tied
            residual = 0.02 / (2 * size.n_layer) ** 0.5  # GPT-2's init, as optlab's
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    is_residual = name.endswith(("c_proj.weight", "mlp.2.weight"))
                    nn.init.normal_(p, 0.0, residual if is_residual else 0.02)
                elif "ln" not in name:
                    nn.init.zeros_(p)

        def forward(self, idx):
            pos = torch.arange(idx.shape[1], device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.blocks:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    return GPT()


class Torch:
    """PyTorch training of ``torch_gpt``: AdamW with the recipe's groups and rates."""

    def __init__(self, size: Size, vocab: int, adamw: AdamW, batches: list, compiled: bool):
        import torch

        self.torch = torch
        torch.manual_seed(0)
        self.net = torch_gpt(size, vocab)
        self.fn = torch.compile(self.net) if compiled else self.net
        named = dict(self.net.named_parameters())  # the tied head appears once, as wte
        embeddings = ("wte", "wpe")
        decays = {n: p.dim() >= 2 and n.split(".")[0] not in embeddings for n, p in named.items()}
        decay = [p for n, p in named.items() if decays[n]]  # as optlab.train.lm.decay_mask
        rest = [p for n, p in named.items() if not decays[n]]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": adamw.weight_decay}, {"params": rest}],
            lr=adamw.learning_rate,
            betas=(adamw.b1, adamw.b2),
            eps=adamw.eps,
            weight_decay=0.0,
        )
        self.params = list(named.values())
        self.adamw, self.vocab = adamw, vocab
        self.batches = [
            (torch.from_numpy(x).long(), torch.from_numpy(y).long()) for x, y in batches
        ]
        self.i, self.losses = 0, []

    def count(self) -> int:
        return sum(p.numel() for p in self.params)

    def window(self, steps: int) -> float:
        f = self.torch.nn.functional
        start = time.perf_counter()
        for _ in range(steps):
            x, y = self.batches[self.i % len(self.batches)]
            for group in self.opt.param_groups:
                group["lr"] = float(self.adamw.rates[min(self.i, len(self.adamw.rates) - 1)])
            self.i += 1
            loss = f.cross_entropy(self.fn(x).view(-1, self.vocab), y.view(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.torch.nn.utils.clip_grad_norm_(self.params, self.adamw.clip)
            self.opt.step()
            self.losses.append(loss.detach())
        return time.perf_counter() - start

    @property
    def loss(self) -> float:
        """The mean train loss over every step so far (as optlab logs its train_loss)."""
        return float(self.torch.stack(self.losses).mean())


def torch_matmul(n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of PyTorch's fastest float32 ``n × n`` matmul: the probe, on torch's side."""
    import torch

    a = torch.ones(n, n)
    a @ a
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best
