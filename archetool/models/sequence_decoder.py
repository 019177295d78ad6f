"""Autoregressive token decoder conditioned on a latent point (DESIGN §1.4).

p(s_1..s_L | c, z) = prod_i p(s_i | s_<i, c, z): a one-layer GRU whose initial state is a map of [c, z] and
whose every input step is [embedding(s_{i-1}), map of [c, z]]. Token ids follow
``archetool.data.selfies_tokens``: 0 padding, 1 begin, 2 end, then symbols.

c is the model's latent point (deepaa: a point of the (k-1)-simplex, 3 numbers for k = 4), far too little to
say which molecule is meant. The decoder may have its own *free latent* z (``free_dim``; off by default, see
:data:`FIT_DEFAULTS`): a conditional VAE. Training: z ~ q(z | x) from the sample's input
features x (model space, detached: the main model is not pulled on), and KL(q(z | x) || p(z | c)) with a learned
Gaussian prior p(z | c). Generation: z ~ p(z | c) (its mean for greedy decoding), so a molecule decoded at c is a
typical molecule *of c*, and what c predicts (side values, class) carries over to it.

Shapes: c (n, condition_dim) float; x (n, source_dim) float; tokens (n, L) long, L = max_length + 1 (symbols,
end, padding); z (n, free_dim).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAD, BOS, EOS = 0, 1, 2

#: settings of a new fit's decoder (a saved decoder without them was built with the constructor's defaults).
#: No free latent by default: on NCI (1,000 molecules, logP) it let the decoded molecules' logP follow z rather than
#: the simplex point (Pearson of pred_logp and RDKit logP over prior samples 0.13, against 0.79 without it).
#: State 256 (was 128): on 50k MOSES molecules the decoder was capacity-bound, not data-bound (as a language model,
#: 29 epochs: validation tokens 0.740 -> 0.696 nats, FCD to MOSES test 6.39 -> 4.05 at temperature 0.7; randomised-SMILES
#: augmentation, which helps an over-fitting model, made the 128-unit one worse, 7.58); on 1,000 QM9 molecules the
#: two tie (0.994 / 0.998) and the larger costs 2.5 s of the 25 s fit.
FIT_DEFAULTS = {"free_dim": 0, "hidden_dim": 256}

#: what the condition c holds: "latent" the latent point only; "side" the latent point and the side values the
#: main model predicts there; "decoded" those and the main model's decoded features x̂(c) too (model space: the
#: fingerprint bits and descriptors the latent point stands for). All are functions of the latent point, computed by
#: the (detached) main model, so the decoder still reads only c; the richer forms give it the chemistry of c
#: ready-made instead of asking a small map of 3 numbers to learn it.
READS = ("latent", "side", "decoded")


class SequenceDecoder(nn.Module):
    """vocab_size: token ids incl. the 3 special ones; max_length: symbols per molecule at most;
    condition_dim: size of c; embedding_dim, hidden_dim: token embedding and GRU state sizes;
    token_weight: weight of the decoder's loss in the model's loss; free_dim: size of the free latent z
    (0: none, the decoder reads c only); source_dim: size of x, which q(z | x) reads; free_beta: weight of
    KL(q(z|x) || p(z|c)) per molecule, against the token cross-entropy summed over the molecule;
    word_dropout: fraction of teacher-forced input tokens replaced by padding in training (makes the GRU lean
    on c and z rather than on the previous token); read: what the main model hands over as c (see
    :data:`READS`; the main model builds it, this module only records the choice); dropout: fraction of the token
    embeddings' and the GRU outputs' units zeroed in training (regularises a GRU that over-fits); mix: fraction
    of training rows whose latent point the main model moves part of the way (a share 1 - lam, lam ~ U(0.5, 1))
    toward another row's before building c, the row's own molecule still the target (deepaa, whose fits set 0.5:
    teaches the decoder the stretches between training molecules that ``interpolate`` and ``--grid`` cross, see
    ``DeepAAAnalysis.decoder_defaults``)."""

    def __init__(self, vocab_size: int, max_length: int, condition_dim: int, embedding_dim: int = 32,
                 hidden_dim: int = 128, condition_width: int = 32, token_weight: float = 1.0, free_dim: int = 0,
                 source_dim: int = 0, free_beta: float = 1.0, word_dropout: float = 0.0, read: str = "latent",
                 dropout: float = 0.0, mix: float = 0.0):
        super().__init__()
        if read not in READS:
            raise ValueError(f"unknown decoder read {read!r}; choose one of {', '.join(READS)}")
        self.read = read
        self.vocab_size, self.max_length, self.condition_dim = int(vocab_size), int(max_length), int(condition_dim)
        self.embedding_dim, self.hidden_dim, self.condition_width = int(embedding_dim), int(hidden_dim), int(condition_width)
        self.token_weight = float(token_weight)
        self.free_dim, self.source_dim = int(free_dim), int(source_dim)
        self.free_beta, self.word_dropout, self.dropout = float(free_beta), float(word_dropout), float(dropout)
        self.mix = float(mix)
        if self.free_dim and not self.source_dim:
            raise ValueError("a free latent (free_dim > 0) needs source_dim, the size of the features q(z | x) reads")
        width = self.condition_width + (self.hidden_dim if self.free_dim else 0)
        self.condition_map = nn.Sequential(nn.Linear(self.condition_dim, self.condition_width), nn.SiLU(),
                                           nn.Linear(self.condition_width, self.condition_width), nn.SiLU())
        if self.free_dim:
            self.posterior = nn.Sequential(nn.Linear(self.source_dim, self.hidden_dim), nn.SiLU(),
                                           nn.Linear(self.hidden_dim, 2 * self.free_dim))  # q(z | x)
            self.prior = nn.Sequential(nn.Linear(self.condition_width, self.hidden_dim), nn.SiLU(),
                                       nn.Linear(self.hidden_dim, 2 * self.free_dim))  # p(z | c)
            self.free_map = nn.Sequential(nn.Linear(self.free_dim, self.hidden_dim), nn.SiLU())
        self.initial_state = nn.Linear(width, self.hidden_dim)
        self.embedding = nn.Embedding(self.vocab_size, self.embedding_dim, padding_idx=PAD)
        self.gru = nn.GRU(self.embedding_dim + width, self.hidden_dim, batch_first=True)
        self.head = nn.Linear(self.hidden_dim, self.vocab_size)

    def settings(self) -> dict:
        """JSON-able keyword arguments that rebuild this decoder."""
        return dict(vocab_size=self.vocab_size, max_length=self.max_length, condition_dim=self.condition_dim,
                    embedding_dim=self.embedding_dim, hidden_dim=self.hidden_dim,
                    condition_width=self.condition_width, token_weight=self.token_weight, free_dim=self.free_dim,
                    source_dim=self.source_dim, free_beta=self.free_beta, word_dropout=self.word_dropout,
                    read=self.read, dropout=self.dropout, mix=self.mix)

    @staticmethod
    def _gaussian(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 2·free_dim) -> mean (n, free_dim), log-variance (n, free_dim) clamped to [-8, 4]."""
        mean, logvar = params.chunk(2, dim=-1)
        return mean, logvar.clamp(-8.0, 4.0)

    def free_prior(self, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z | c): c (n, C) -> mean, log-variance (n, free_dim)."""
        return self._gaussian(self.prior(self.condition_map(condition)))

    def _inputs(self, cond: torch.Tensor, free: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """mapped c (n, condition_width) [+ z (n, free_dim)] -> (per-step input (n, width), initial state (1, n, hidden))."""
        if free is not None:
            cond = torch.cat([cond, self.free_map(free)], dim=-1)
        return cond, torch.tanh(self.initial_state(cond)).unsqueeze(0)

    def logits(self, condition: torch.Tensor, tokens: torch.Tensor, free: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: c (n, C), tokens (n, L) [, z (n, free_dim)] -> next-token logits (n, L, vocab_size)."""
        cond, h0 = self._inputs(self.condition_map(condition), free)
        previous = torch.cat([torch.full_like(tokens[:, :1], BOS), tokens[:, :-1]], dim=1)
        if self.training and self.word_dropout > 0:
            drop = torch.rand(previous.shape, device=previous.device) < self.word_dropout
            drop[:, 0] = False
            previous = previous.masked_fill(drop, PAD)
        embedded = F.dropout(self.embedding(previous), self.dropout, self.training)
        steps = torch.cat([embedded, cond.unsqueeze(1).expand(-1, tokens.shape[1], -1)], dim=-1)
        out, _ = self.gru(steps, h0)
        return self.head(F.dropout(out, self.dropout, self.training))

    def loss(self, condition: torch.Tensor, tokens: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy (nats) per token over the non-padding positions (symbols and the end token); with a
        free latent, plus free_beta·KL(q(z|x) || p(z|c)) per molecule divided by the mean tokens per molecule
        (so the sum is the sequence ELBO per token). ``source``: x (n, source_dim), needed with a free latent."""
        longest = int((tokens != PAD).sum(1).max())  # the batch's columns past its longest molecule are padding
        tokens = tokens[:, : max(longest, 1)]
        free, kl = None, None
        if self.free_dim:
            if source is None:
                raise ValueError("this decoder has a free latent: loss() needs the source features x")
            mean_q, logvar_q = self._gaussian(self.posterior(source))
            free = mean_q + torch.randn_like(mean_q) * (0.5 * logvar_q).exp() if self.training else mean_q
            mean_p, logvar_p = self.free_prior(condition)
            kl = 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mean_q - mean_p) ** 2) / logvar_p.exp() - 1).sum(-1)
        logits = self.logits(condition, tokens, free)
        ce = F.cross_entropy(logits.reshape(-1, self.vocab_size), tokens.reshape(-1), ignore_index=PAD)
        if kl is None:
            return ce
        per_molecule = (tokens != PAD).sum(1).float().mean().clamp(min=1.0)
        return ce + self.free_beta * kl.mean() / per_molecule

    @torch.no_grad()
    def sequence_log_prob(self, condition: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Total log-probability (nats) of each token row under the decoder: c (m, C), tokens (m, L) as
        :meth:`generate` returns them -> (m,). A free latent is taken at the mean of p(z | c)."""
        free = self.free_prior(condition)[0] if self.free_dim else None
        logits = self.logits(condition, tokens, free).float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        return (logp * (tokens != PAD)).sum(1)

    @torch.no_grad()
    def generate(self, condition: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
                 first_allowed: torch.Tensor | None = None) -> torch.Tensor:
        """c (m, C) -> tokens (m, max_length + 1), each row ended by the end token (then padding).

        ``temperature`` 0: greedy (the most likely token at each step; the free latent at the mean of p(z | c));
        > 0: z ~ N(mean, temperature²·var) of p(z | c) and tokens sampled from softmax(logits / temperature).
        Padding and begin are never emitted; the end token is not allowed first, so no molecule is empty.
        ``first_allowed`` (vocab_size,) bool: the tokens that may come first (SELFIES: atoms; a sequence that
        starts with a branch or ring symbol decodes to nothing).
        """
        m = condition.shape[0]
        free = None
        if self.free_dim:
            mean, logvar = self.free_prior(condition)
            free = mean
            if temperature > 0:
                noise = torch.randn(mean.shape, generator=generator, device=mean.device) if generator is not None \
                    else torch.randn_like(mean)
                free = mean + temperature * (0.5 * logvar).exp() * noise
        cond, h = self._inputs(self.condition_map(condition), free)
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


class DecoderStage(nn.Module):
    """The sequence decoder of a trained model, trained on its own (the model's second training stage).

    The decoder's condition and features are detached, so the decoder is a separate model of the (fixed) latent
    points. Trained beside the main model (``fit --decoder-epochs 0``) it gets few steps at a learning rate that
    decays with the main model's, on latent points that still move, and ends under-trained (a language model whose
    greedy decode is a carbon chain wherever it is asked), while making each main step ~7x dearer. By default it
    trains only here, from its initial weights, with the main model frozen (eval mode, no gradient, not among this
    module's parameters), through the same training loop; the validation loss is the decoder's own, so early
    stopping and the best epoch are chosen on it. Its ``state_dict`` is the decoder's.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.decoder = module.sequence_decoder
        object.__setattr__(self, "main", module)  # not a submodule: its parameters are not trained here

    def train(self, mode: bool = True) -> "DecoderStage":
        self.training = mode
        self.main.eval()  # the decoder is one of its submodules: set it after
        self.decoder.train(mode)
        return self

    @torch.no_grad()
    def training_arrays(self, arrays: dict, block: int = 2048) -> dict:
        """``arrays`` (numpy, n rows) plus the frozen main model's :meth:`decoder_condition_parts` of every row
        (computed once, in blocks of ``block`` rows on the model's device), so that a step runs the decoder
        alone; unchanged for a model without them."""
        from archetool.models.base import map_rows

        if not getattr(self.main, "condition_parts", ()):
            return arrays
        self.main.eval()
        device = next(self.main.parameters()).device
        return {**arrays, **map_rows(self.main.decoder_condition_parts, arrays["x"], device, block)}

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The decoder's token loss on the latent points the frozen main model gives (drawn as in its own
        training): from the batch's cached condition parts (:meth:`training_arrays`), else through the main
        model's ``loss_terms`` (its whole loss, for its "tokens" term)."""
        keys = tuple(getattr(self.main, "condition_parts", ()))
        if keys and all(key in batch for key in keys):
            tokens = self.main.token_loss(batch, self.main.decoder_condition({key: batch[key] for key in keys}))
        else:
            tokens = self.main.loss_terms(batch)["tokens"]
        return {"tokens": tokens, "loss": tokens}

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        pass

    def annealing_epochs(self, n_epochs: int) -> int:
        return 0

    @torch.no_grad()
    def metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.main.embed(x)
