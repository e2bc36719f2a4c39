"""Unlearning objectives (SPEC §2): pure losses of log-probs, the METHODS table, and `Objective`.

Every loss is the quantity minimised. `loss = γ · L_forget + α · L_retain`. The pure functions
take tensors, never the model; `Objective` runs the forward passes (via `logprobs`) and
combines them. Adding a method is one line in METHODS (and, for a new criterion, one line in
`weighting.CRITERIA`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from satimp.config import MethodConfig
from satimp.data.encoding import Encoded
from satimp.errors import InputError
from satimp.logprobs import TokenLogps, example_logps, forward_logps
from satimp.protocol import Protocol, method_overrides
from satimp.protocol import resolve as resolve_protocol
from satimp.weighting import CRITERIA, token_weights, weight_stats

# ---------------------------------------------------------------- pure losses


def weighted_ga_loss(
    logps: Tensor, mask: Tensor, weights: Tensor, *, normalize: str = "tokens"
) -> Tensor:
    """Token-weighted gradient ascent (SPEC §1): L = −(1/N) Σ_k w_k ℓ_k = (1/N) Σ_k w_k log p_k.

    Args: logps [B, T], mask [B, T] bool, weights [B, T] detached.
    normalize: 'tokens' → N = number of valid tokens; 'weights' → N = Σ_k w_k;
      'sequences' → N = number of sequences with a valid token, giving the instance-level form
      −(1/B) Σ_i w_i S_i when w is constant within each sequence; 'sum' → no division.
    Returns: scalar; 0 when no token is valid.
    """
    total = (weights * logps * mask).sum()
    if normalize == "tokens":
        n = mask.sum()
    elif normalize == "weights":
        n = (weights * mask).sum()
    elif normalize == "sequences":
        n = mask.any(-1).sum()
    elif normalize == "sum":  # a plain sum (the authors' hard-sampling losses)
        return total
    else:
        raise ValueError(f"normalize={normalize!r}; valid: tokens, weights, sequences, sum")
    return total / n.clamp_min(1e-12) if n > 0 else total * 0


def nll_loss(logps: Tensor, mask: Tensor) -> Tensor:
    """Mean token NLL: −(1/N) Σ_k log p_k over valid tokens. logps, mask [B, T] → scalar."""
    return -(logps * mask).sum() / mask.sum().clamp_min(1)


def npo_loss(seq_logps: Tensor, ref_seq_logps: Tensor, *, beta: float) -> Tensor:
    """NPO (Zhang et al., 2024): mean_i −(2/β) log σ(−β (log π_θ(y_i|x_i) − log π_ref(y_i|x_i))).

    Args: seq_logps [B], ref_seq_logps [B] (summed answer log-probs). Returns scalar.
    −log σ(−x) = softplus(x), the numerically stable form used here.
    """
    return (2.0 / beta) * F.softplus(beta * (seq_logps - ref_seq_logps)).mean()


def simnpo_loss(seq_logps: Tensor, lengths: Tensor, *, beta: float, delta: float) -> Tensor:
    """SimNPO (Fan et al., 2024), paper form: mean_i −(2/β) log σ(−(β/|y_i|) log π_θ(y_i|x_i) − δ).

    Args: seq_logps [B], lengths [B] answer token counts (≥ 1). Returns scalar.
    """
    return (2.0 / beta) * F.softplus(beta * seq_logps / lengths.clamp_min(1) + delta).mean()


def kl_loss(logits: Tensor, ref_logits: Tensor, mask: Tensor) -> Tensor:
    """KL(π_ref ‖ π_θ) per position, averaged over the positions of `mask`.

    KL_t = Σ_v p_ref(v) (log p_ref(v) − log p_θ(v)). logits, ref_logits [B, T, V]; mask [B, T].
    SPEC §2's form passes the answer-token mask; TOFU, open-unlearning and the authors' code
    (`kl_div(..., reduction='batchmean')` over the reshaped [B·T, V]) average over every
    position, prompt and padding included — an all-True mask (`protocol.kl = 'all'`).
    """
    logp = logits.float().log_softmax(-1)
    ref_logp = ref_logits.float().log_softmax(-1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)  # [B, T]
    return (kl * mask).sum() / mask.sum().clamp_min(1)


def rmu_forget_loss(hidden: Tensor, control: Tensor, mask: Tensor) -> Tensor:
    """RMU forget term (Li et al., 2024): mean over valid tokens of ‖h_ℓ(x_f) − c·u‖² / D.

    hidden [B, T, D], control [D] (= c·u), mask [B, T] bool. Returns scalar.
    """
    err = (hidden.float() - control).pow(2).mean(-1)
    return (err * mask).sum() / mask.sum().clamp_min(1)


def rmu_retain_loss(hidden: Tensor, ref_hidden: Tensor, mask: Tensor) -> Tensor:
    """RMU retain term: mean over valid tokens of ‖h_ℓ(x_r) − h_ℓ^ref(x_r)‖² / D."""
    err = (hidden.float() - ref_hidden.float()).pow(2).mean(-1)
    return (err * mask).sum() / mask.sum().clamp_min(1)


# ---------------------------------------------------------------- the methods table


@dataclass(frozen=True)
class MethodSpec:
    """One unlearning method: its forget loss kind, criterion, defaults (SPEC §2 table)."""

    forget: str  # 'weighted' (token-weighted GA), 'npo', 'simnpo' or 'rmu'
    criterion: str = "ga"  # weighting.CRITERIA key, for 'weighted' and 'npo'
    params: dict = field(default_factory=dict)  # objective hyperparameters beyond the criterion's
    gamma: float = 1.0
    alpha: float = 1.0
    retain: str = "nll"
    help: str = ""


METHODS: dict[str, MethodSpec] = {
    "ga": MethodSpec("weighted", "ga", gamma=1, alpha=0, retain="none", help="gradient ascent"),
    "gd": MethodSpec("weighted", "ga", help="gradient difference: GA + retain NLL"),
    "npo": MethodSpec("npo", "ga", {"beta": 0.1}, help="negative preference optimisation"),
    "npo_topk": MethodSpec("npo", "topk", {"beta": 0.1}, help="NPO on the s lowest-p tokens"),
    "npo_bottomk": MethodSpec(
        "npo", "bottomk", {"beta": 0.1}, help="NPO on the s highest-p tokens"
    ),
    "npo_random": MethodSpec("npo", "random", {"beta": 0.1}, help="NPO on s random tokens"),
    # the authors' simnpo_grad_diff: npo_coeff 0.1375 on the forget term, 1.0 on the retain term
    "simnpo": MethodSpec(
        "simnpo", "ga", {"beta": 2.5, "delta": 0.0}, gamma=0.1375, alpha=1.0, help="SimNPO"
    ),
    "wga": MethodSpec("weighted", "wga", help="weighted GA, w = p^β"),
    # the authors' simsat_gd: w = p^β with β = 5, 0.1 · forget + 1 · retain
    "simsat": MethodSpec("weighted", "simsat", gamma=0.1, help="saturation, w = p^β"),
    "simimp": MethodSpec("weighted", "simimp", help="importance, w = (1−p)^β"),
    "satimp": MethodSpec("weighted", "satimp", alpha=0.1, help="SatImp, w = p^β1 (1−p)^β2"),
    "topk": MethodSpec("weighted", "topk", help="hard sampling: s lowest-likelihood tokens"),
    "bottomk": MethodSpec("weighted", "bottomk", help="hard sampling: s highest-likelihood tokens"),
    "random": MethodSpec("weighted", "random", help="hard sampling: s random tokens"),
    "annotated": MethodSpec("weighted", "annotated", help="key-fact tokens weighted 1−ρ, others ρ"),
    "rmu": MethodSpec("rmu", "ga", {"layer": None, "steering": 6.5}, retain="rmu", help="RMU"),
}
RETAIN_LOSSES = ("none", "nll", "kl")


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]


def resolve_params(cfg: MethodConfig, overrides: dict | None = None) -> dict:
    """The method's hyperparameters: criterion and objective defaults, then a protocol's
    defaults (`overrides`, see `protocol.METHOD_DEFAULTS`), then cfg.params."""
    spec = get_method(cfg.name)
    defaults = {**CRITERIA[spec.criterion].defaults, **spec.params, **(overrides or {})}
    unknown = sorted(set(cfg.params) - set(defaults))
    if unknown:
        raise InputError(
            f"method {cfg.name!r} has no parameter {unknown[0]!r}; "
            f"valid: {', '.join(defaults) or 'none'}"
        )
    params = {**defaults, **cfg.params}
    for k in ("beta", "beta1", "beta2"):
        if k in params and params[k] is not None and float(params[k]) < 0:
            raise InputError(f"method {cfg.name!r}: {k}={params[k]} must be ≥ 0")
    if spec.forget in ("npo", "simnpo") and params["beta"] <= 0:  # npo_topk, … divide by it too
        raise InputError(f"method {cfg.name!r}: beta={params['beta']} must be > 0")
    return params


# ---------------------------------------------------------------- the objective


class Objective:
    """A configured method: runs the forward passes and combines the pure losses.

    Call `prepare(model, forget_examples, ...)` once before training: NPO's reference
    log-probs of the forget set are computed there (no reference model is kept), and only
    `kl` and `rmu` keep a frozen copy of the model.
    """

    def __init__(self, cfg: MethodConfig, *, seed: int = 0, protocol: Protocol | None = None):
        self.cfg, self.spec, self.seed = cfg, get_method(cfg.name), seed
        self.protocol = resolve_protocol(protocol)
        own = method_overrides(self.protocol, cfg.name)  # the protocol's defaults, then cfg's
        self.params = resolve_params(cfg, own.get("params"))
        self.gamma = _first_set(cfg.gamma, own.get("gamma"), self.spec.gamma)
        self.alpha = _first_set(cfg.alpha, own.get("alpha"), self.spec.alpha)
        self.retain = _first_set(cfg.retain, own.get("retain"), self.spec.retain)
        if self.spec.forget != "rmu" and self.retain not in RETAIN_LOSSES:
            raise InputError(f"retain={self.retain!r}; valid: {', '.join(RETAIN_LOSSES)}")
        if cfg.normalize not in ("tokens", "weights"):
            raise InputError(f"normalize={cfg.normalize!r}; valid: tokens, weights")
        crit_keys = set(CRITERIA[self.spec.criterion].defaults)
        self.criterion_params = {k: v for k, v in self.params.items() if k in crit_keys}
        self._check_weights()
        self.ref_logps: list[Tensor] | None = None
        self.ref_model = None
        self.control: Tensor | None = None

    @property
    def uses_retain(self) -> bool:
        return self.retain != "none" and self.alpha != 0

    @property
    def needs_ref_model(self) -> bool:
        # only when a retain term reads it (α ≠ 0): never build a model nobody reads
        return self.uses_retain and (self.retain == "kl" or self.spec.forget == "rmu")

    @property
    def hard_sum(self) -> bool:
        """Hard-sampling losses as plain sums over tokens (the authors' ga_/gd_ variants)."""
        sampled = self.spec.criterion in ("topk", "bottomk", "random")
        return sampled and self.spec.forget == "weighted" and self.protocol.hard_reduction == "sum"

    def resolved(self) -> dict:
        """The method as it runs: every default resolved (config.yaml records this)."""
        return {
            "name": self.cfg.name,
            "gamma": self.gamma,
            "alpha": self.alpha,
            "retain": self.retain,
            "params": dict(self.params),
            "granularity": self.cfg.granularity,
            "group_size": self.cfg.group_size,
            "tau": self.cfg.tau,
            "normalize": self.cfg.normalize,
        }

    def _check_weights(self) -> None:
        """Validate criterion parameters now, before any work (token_weights raises ValueError)."""
        probe = torch.zeros(1, 2)
        try:
            self.weights(
                probe,
                torch.ones(1, 2, dtype=torch.bool),
                step=0,
                key_mask=torch.ones(1, 2, dtype=torch.bool),
            )
        except ValueError as e:
            raise InputError(f"method {self.cfg.name!r}: {e}") from None

    def weights(self, logps: Tensor, mask: Tensor, *, step: int, key_mask: Tensor | None) -> Tensor:
        params = dict(self.criterion_params)
        if "seed" in params:  # fresh random picks every step, reproducible from the seed
            params["seed"] = int(params["seed"]) + self.seed * 1_000_003 + step
        criterion = self.spec.criterion
        if criterion == "bottomk" and self.protocol.bottomk == "complement":
            # the authors' Bottom-K keeps the tokens below TopK's loss quantile: all but TopK's
            criterion = "topk"
        w = token_weights(
            criterion,
            logps,
            mask,
            granularity=self.cfg.granularity,
            group_size=self.cfg.group_size,
            tau=self.cfg.tau,
            key_mask=key_mask if self.spec.criterion == "annotated" else None,
            **params,
        )
        return torch.where(mask, 1 - w, 0.0) if criterion != self.spec.criterion else w

    # -- set-up

    @torch.no_grad()
    def prepare(self, model, forget: list[Encoded], *, pad_id: int, batch_size: int = 16) -> None:
        if self.spec.forget == "npo":
            self.ref_logps = example_logps(model, forget, pad_id=pad_id, batch_size=batch_size)
        if self.needs_ref_model:
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        if self.spec.forget == "rmu":
            g = torch.Generator().manual_seed(self.seed)
            u = torch.rand(model.config.hidden_size, generator=g)
            if self.protocol.rmu_control == "unit":  # the authors' code keeps u ~ U[0,1)^D
                u = u / u.norm()
            self.control = float(self.params["steering"]) * u
            self.params["layer"] = self.rmu_layer(model)

    def rmu_layer(self, model) -> int:
        n = model.config.num_hidden_layers
        layer = self.params.get("layer")
        layer = max(0, min(7, n // 2 - 1)) if layer is None else int(layer)
        if not 0 <= layer < n:
            raise InputError(f"rmu layer={layer} out of range for a {n}-layer model")
        return layer

    def trainable(self, model) -> list[torch.nn.Parameter]:
        """Parameters the optimizer updates: all, except RMU's layers ℓ−2..ℓ only (unless the
        protocol trains every parameter, as the authors' and open-unlearning's RMU do)."""
        if self.spec.forget != "rmu" or self.protocol.rmu_params == "all":
            return [p for p in model.parameters() if p.requires_grad]
        layer = self.params["layer"]
        keep = {f"layers.{i}." for i in range(max(0, layer - 2), layer + 1)}
        params = []
        for name, p in model.named_parameters():  # with LoRA: the adapters of those layers
            on = p.requires_grad and any(k in name for k in keep)
            p.requires_grad_(on)
            if on:
                params.append(p)
        return params

    # -- one step

    def __call__(self, model, batch: dict, *, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        """Loss of one paired batch {'forget': …, 'retain': …, 'index': [B]} and its log fields:
        the sum of `parts`."""
        loss, logs = None, {}
        for part in self.parts(model, batch, step=step):
            term, more = part()
            loss, logs = term if loss is None else loss + term, logs | more
        return loss, logs

    def parts(
        self, model, batch: dict, *, step: int = 0
    ) -> list[Callable[[], tuple[Tensor, dict]]]:
        """The loss γ·L_forget + α·L_retain as its terms, each a thunk that runs its own forward
        pass and returns (term, log fields). The training loop backpropagates each term before
        it runs the next, so one batch's graph is alive at a time instead of two (the gradient
        of the sum is the sum of the gradients)."""
        forget = self._rmu_forget if self.spec.forget == "rmu" else self._forget_term
        parts = [lambda: forget(model, batch, step)]
        if self.uses_retain:
            retain = self._rmu_retain if self.spec.forget == "rmu" else self._retain_term
            parts.append(lambda: retain(model, batch))
        return parts

    def _forget_term(self, model, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        f = forward_logps(model, batch["forget"])
        logs: dict[str, float] = {}
        if self.spec.forget == "weighted":
            w = self.weights(f.logps, f.mask, step=step, key_mask=_shifted_keys(batch["forget"]))
            coarse = self.cfg.granularity in ("instance", "batch")
            norm = "sequences" if coarse else self.cfg.normalize
            forget_loss = weighted_ga_loss(
                f.logps, f.mask, w, normalize="sum" if self.hard_sum else norm
            )
            logs |= {f"weight_{k}": v for k, v in weight_stats(w, f.logps.detach(), f.mask).items()}
        elif self.spec.forget == "npo":
            ref = self._batch_ref_logps(batch["index"], f.logps)
            w = self.weights(f.logps, f.mask, step=step, key_mask=_shifted_keys(batch["forget"]))
            seq, ref_seq = (w * f.logps * f.mask).sum(-1), (w * ref * f.mask).sum(-1)
            forget_loss = npo_loss(seq, ref_seq, beta=float(self.params["beta"]))
            if self.spec.criterion != "ga":
                logs |= {
                    f"weight_{k}": v for k, v in weight_stats(w, f.logps.detach(), f.mask).items()
                }
        else:  # simnpo
            forget_loss = simnpo_loss(
                f.seq_logps,
                f.mask.sum(-1),
                beta=float(self.params["beta"]),
                delta=float(self.params["delta"]),
            )
        logs["forget_loss"] = forget_loss.item()
        return self.gamma * forget_loss * scale_of(batch, "forget", self.forget_unit), logs

    def _retain_term(self, model, batch: dict) -> tuple[Tensor, dict[str, float]]:
        retain_loss = self._retain_loss(model, batch["retain"])
        unit = "sum" if self.hard_sum and self.retain == "nll" else "tokens"
        term = self.alpha * retain_loss * scale_of(batch, "retain", unit)
        return term, {"retain_loss": retain_loss.item()}

    @property
    def forget_unit(self) -> str:
        """What the forget loss averages over (for `scale_of`): sequences for NPO and
        SimNPO and for instance/batch-level weights, answer tokens otherwise. (normalize=
        'weights' divides by Σw, which no count knows: its share across micro-batches and
        processes is taken by token count, an approximation.)"""
        if self.spec.forget in ("npo", "simnpo"):
            return "rows"
        if self.spec.forget == "rmu":
            return "attn"
        if self.hard_sum:
            return "sum"
        return "seqs" if self.cfg.granularity in ("instance", "batch") else "tokens"

    def _retain_loss(self, model, batch: dict) -> Tensor:
        if self.retain == "nll":
            r = forward_logps(model, batch)
            if self.hard_sum:  # the authors' gd_ hard sampling sums the retain NLL too
                return -(r.logps * r.mask).sum()
            return nll_loss(r.logps, r.mask)
        r = forward_logps(model, batch, keep_logits=True)
        with torch.no_grad():
            ref = forward_logps(self.ref_model, batch, keep_logits=True)
        if self.protocol.kl == "all":  # batchmean over every position of the padded batch
            return kl_loss(r.logits, ref.logits, torch.ones_like(r.mask))  # all T − 1 positions
        return kl_loss(r.logits, ref.logits, r.mask)

    def _batch_ref_logps(self, index: Tensor, like: Tensor) -> Tensor:
        """Precomputed reference log-probs of these forget examples, padded to `like` [B, T−1]."""
        if self.ref_logps is None:
            raise RuntimeError("Objective.prepare() must run before training with NPO")
        out = torch.zeros_like(like, dtype=torch.float32)
        for row, i in enumerate(index.tolist()):
            r = self.ref_logps[i]
            out[row, : r.numel()] = r.to(out.device)
        return out

    def _rmu_forget(self, model, batch: dict, step: int) -> tuple[Tensor, dict[str, float]]:
        k = self.params["layer"] + 1  # hidden_states[0] is the embedding output
        f = forward_logps(model, batch["forget"], hidden=True)
        fmask = batch["forget"]["attention_mask"].bool()
        forget_loss = rmu_forget_loss(f.hidden[k], self.control.to(f.hidden[k].device), fmask)
        term = self.gamma * forget_loss * scale_of(batch, "forget", "attn")
        return term, {"forget_loss": forget_loss.item()}

    def _rmu_retain(self, model, batch: dict) -> tuple[Tensor, dict[str, float]]:
        # (the authors' RMU has no retain term: α = 0 there, and `parts` leaves this out)
        k = self.params["layer"] + 1
        r = forward_logps(model, batch["retain"], hidden=True)
        with torch.no_grad():
            ref = forward_logps(self.ref_model, batch["retain"], hidden=True)
        rmask = batch["retain"]["attention_mask"].bool()
        retain_loss = rmu_retain_loss(r.hidden[k], ref.hidden[k], rmask)
        term = self.alpha * retain_loss * scale_of(batch, "retain", "attn")
        return term, {"retain_loss": retain_loss.item()}


def _first_set(*values):
    """The first value that is not None (a config's, else a protocol's, else the spec's)."""
    return next(v for v in values if v is not None)


def _shifted_keys(batch: dict) -> Tensor | None:
    """key_mask [B, T] aligned with labels → [B, T−1] aligned with shifted log-probs."""
    keys = batch.get("key_mask")
    return None if keys is None else keys[:, 1:]


def finetune_objective(model, batch: dict, *, step: int = 0) -> tuple[Tensor, dict[str, float]]:
    """Fine-tuning is the same loop with the NLL objective on the 'forget' slot of the batch."""
    f: TokenLogps = forward_logps(model, batch["forget"])
    return nll_loss(f.logps, f.mask) * scale_of(batch, "forget", "tokens"), {}


def scale_of(batch: dict, part: str, unit: str) -> float:
    """The training loop's factor turning this micro-batch's mean over `unit` into its exact
    share of the optimizer step's mean (`satimp.train.batch_scale`); 1 outside the loop."""
    scale = batch.get("scale")
    return 1.0 if scale is None or part not in scale else scale[part][unit]
