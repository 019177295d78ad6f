"""Autoregressive token decoder conditioned on a latent point (DESIGN §1.4).

p(s_1..s_L | c) = prod_i p(s_i | s_<i, c): a one-layer GRU whose initial state is a map of the
condition c and whose every input step is [embedding(s_{i-1}), map of c]. Token ids follow
``archetool.data.selfies_tokens``: 0 padding, 1 begin, 2 end, then symbols.

Shapes: c (n, condition_dim) float; tokens (n, L) long, L = max_length + 1 (symbols, end, padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAD, BOS, EOS = 0, 1, 2


class SequenceDecoder(nn.Module):
    """vocab_size: token ids incl. the 3 special ones; max_length: symbols per molecule at most;
    condition_dim: size of c; embedding_dim, hidden_dim: token embedding and GRU state sizes;
    token_weight: weight of the mean token cross-entropy in the model's loss."""

    def __init__(self, vocab_size: int, max_length: int, condition_dim: int, embedding_dim: int = 32,
                 hidden_dim: int = 128, condition_width: int = 32, token_weight: float = 1.0):
        super().__init__()
        self.vocab_size, self.max_length, self.condition_dim = int(vocab_size), int(max_length), int(condition_dim)
        self.embedding_dim, self.hidden_dim, self.condition_width = int(embedding_dim), int(hidden_dim), int(condition_width)
        self.token_weight = float(token_weight)
        self.condition_map = nn.Sequential(nn.Linear(self.condition_dim, self.condition_width), nn.SiLU(),
                                           nn.Linear(self.condition_width, self.condition_width), nn.SiLU())
        self.initial_state = nn.Linear(self.condition_width, self.hidden_dim)
        self.embedding = nn.Embedding(self.vocab_size, self.embedding_dim, padding_idx=PAD)
        self.gru = nn.GRU(self.embedding_dim + self.condition_width, self.hidden_dim, batch_first=True)
        self.head = nn.Linear(self.hidden_dim, self.vocab_size)

    def settings(self) -> dict:
        """JSON-able keyword arguments that rebuild this decoder."""
        return dict(vocab_size=self.vocab_size, max_length=self.max_length, condition_dim=self.condition_dim,
                    embedding_dim=self.embedding_dim, hidden_dim=self.hidden_dim,
                    condition_width=self.condition_width, token_weight=self.token_weight)

    def _start(self, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """c (n, condition_dim) -> (mapped condition (n, condition_width), initial GRU state (1, n, hidden))."""
        cond = self.condition_map(condition)
        return cond, torch.tanh(self.initial_state(cond)).unsqueeze(0)

    def logits(self, condition: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: c (n, C), tokens (n, L) -> next-token logits (n, L, vocab_size)."""
        cond, h0 = self._start(condition)
        previous = torch.cat([torch.full_like(tokens[:, :1], BOS), tokens[:, :-1]], dim=1)
        steps = torch.cat([self.embedding(previous), cond.unsqueeze(1).expand(-1, tokens.shape[1], -1)], dim=-1)
        out, _ = self.gru(steps, h0)
        return self.head(out)

    def loss(self, condition: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats) per token over the non-padding positions (symbols and the end token)."""
        longest = int((tokens != PAD).sum(1).max())  # the batch's columns past its longest molecule are padding
        tokens = tokens[:, : max(longest, 1)]
        logits = self.logits(condition, tokens)
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), tokens.reshape(-1), ignore_index=PAD)

    @torch.no_grad()
    def generate(self, condition: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
                 first_allowed: torch.Tensor | None = None) -> torch.Tensor:
        """c (m, C) -> tokens (m, max_length + 1), each row ended by the end token (then padding).

        ``temperature`` 0: greedy (the most likely token at each step); > 0: sampled from
        softmax(logits / temperature). Padding and begin are never emitted; the end token is not
        allowed first, so no molecule is empty. ``first_allowed`` (vocab_size,) bool: the tokens that may
        come first (SELFIES: atoms; a sequence that starts with a branch or ring symbol decodes to nothing).
        """
        m = condition.shape[0]
        cond, h = self._start(condition)
        tokens = torch.full((m, self.max_length + 1), PAD, dtype=torch.long, device=condition.device)
        previous = torch.full((m,), BOS, dtype=torch.long, device=condition.device)
        done = torch.zeros(m, dtype=torch.bool, device=condition.device)
        for i in range(self.max_length + 1):
            step = torch.cat([self.embedding(previous), cond], dim=-1).unsqueeze(1)
            out, h = self.gru(step, h)
            logits = self.head(out[:, 0]).float()
            logits[:, PAD] = -torch.inf
            logits[:, BOS] = -torch.inf
            if i == 0:
                logits[:, EOS] = -torch.inf
                if first_allowed is not None:
                    logits[:, ~first_allowed.to(logits.device)] = -torch.inf
            if i == self.max_length:  # the longest training molecule: stop here
                nxt = torch.full((m,), EOS, dtype=torch.long, device=condition.device)
            elif temperature <= 0:
                nxt = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            tokens[:, i] = nxt
            done = done | (nxt == EOS)
            previous = torch.where(done, torch.full_like(nxt, EOS), nxt)
            if bool(done.all()):
                break
        return tokens
