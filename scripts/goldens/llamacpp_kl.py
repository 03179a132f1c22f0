"""llama.cpp's `llama-perplexity --kl-divergence-base` / `--kl-divergence` protocol and report, driven
through llama-cpp-python (which has no perplexity tool): logits from llama.cpp for every chunk, and the
arithmetic of `tools/perplexity/perplexity.cpp` (`log_softmax` with uint16 log-probs, `kl_divergence`,
`mean_and_uncertainty`, `percentile`) ported to numpy with the same float32/float64 types.

Used by scripts/goldens/quantize_llamacpp.py (KL goldens) and bench/quantize/run.sh (KL measurements).
"""

from __future__ import annotations

import math
import os

import numpy as np
import llama_cpp


def chunks_of(llm: llama_cpp.Llama, text: str, n_ctx: int, max_chunks: int | None) -> tuple[list[int], int]:
    """`common_tokenize(ctx, text, add_special=true)`: BOS if the model adds one, text not parsed for specials."""
    toks = llm.tokenize(text.encode("utf-8"), add_bos=llm._model.add_bos_token(), special=False)
    assert len(toks) >= 2 * n_ctx, f"need {2 * n_ctx} tokens, got {len(toks)}"
    n_chunk = len(toks) // n_ctx
    if max_chunks is not None:
        n_chunk = min(n_chunk, max_chunks)
    return toks[: n_chunk * n_ctx], n_chunk


def open_model(path: str, n_ctx: int) -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                           n_threads=int(os.environ.get("LLAMA_THREADS", os.cpu_count() or 1)), n_gpu_layers=0,
                           verbose=False, seed=0)


def chunk_logits(llm: llama_cpp.Llama, chunk: list[int], n_ctx: int) -> np.ndarray:
    """Logits of the scored rows (positions n_ctx/2 .. n_ctx-2) of one chunk, BOS first if the model adds one."""
    first = n_ctx // 2
    toks = list(chunk)
    if llm._model.add_bos_token():
        toks[0] = llm.token_bos()
    llm.reset()
    llm.eval(toks)
    return np.array(llm.scores[first : n_ctx - 1], dtype=np.float32, copy=True)


def _nearest_int(x: np.ndarray) -> np.ndarray:
    v = (x.astype(np.float32) + np.float32(12582912.0)).view(np.int32)
    return (v & 0x007FFFFF) - 0x00400000


def encode_rows(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`log_softmax(n_vocab, logits, uint16 *log_prob, tok)` for every row: (rows × nv uint16, NLL as float64)."""
    rows, n_vocab = logits.shape
    nv = 2 * ((n_vocab + 1) // 2) + 4
    mx = logits.max(axis=1)
    mn = np.maximum(logits.min(axis=1), mx - np.float32(16))
    sum_exp = np.exp(logits - mx[:, None]).astype(np.float64).sum(axis=1)
    lse = np.log(sum_exp).astype(np.float32)
    min_log_prob = (mn - mx - lse).astype(np.float32)
    scale = ((mx - mn) / np.float32(65535)).astype(np.float32)
    out = np.zeros((rows, nv), dtype=np.uint16)
    out[:, 0:4] = np.stack([scale, min_log_prob], axis=1).view(np.uint16)
    inv = np.where(scale != 0, np.float32(1) / np.where(scale != 0, scale, 1), 0).astype(np.float32)
    q = _nearest_int(inv[:, None] * (logits - mn[:, None]))
    q = np.where(logits > mn[:, None], q, 0).astype(np.uint16)
    q[scale == 0] = 0
    out[:, 4 : 4 + n_vocab] = q
    nll = (mx + lse - logits[np.arange(rows), targets]).astype(np.float32).astype(np.float64)
    return out, nll


class KlSums:
    def __init__(self):
        self.nll = self.nll2 = self.nll_base = self.nll_base2 = self.nll_nll_base = 0.0
        self.kld = self.kld2 = self.p_diff = self.p_diff2 = self.p_diff4 = 0.0
        self.same_top = self.count = 0
        self.klds: list[np.ndarray] = []
        self.dps: list[np.ndarray] = []

    def add(self, logits: np.ndarray, base: np.ndarray, targets: np.ndarray) -> None:
        """`log_softmax(n_vocab, logits, base_log_prob, tok, kld)` for every row of a chunk."""
        rows, n_vocab = logits.shape
        mx = logits.max(axis=1)
        imax = logits.argmax(axis=1)
        lse = np.log(np.exp(logits - mx[:, None]).astype(np.float64).sum(axis=1)).astype(np.float32)
        hdr = base[:, 0:4].copy().view(np.float32)
        scale, min_log_prob = hdr[:, 0], hdr[:, 1]
        q = base[:, 4 : 4 + n_vocab].astype(np.float32)
        r = np.arange(rows)
        nll = (mx + lse - logits[r, targets]).astype(np.float32)
        nll_base = (-(scale * q[r, targets] + min_log_prob)).astype(np.float32)
        self.nll += float(nll.astype(np.float64).sum())
        self.nll2 += float((nll * nll).astype(np.float64).sum())
        self.nll_base += float(nll_base.astype(np.float64).sum())
        self.nll_base2 += float((nll_base * nll_base).astype(np.float64).sum())
        self.nll_nll_base += float((nll * nll_base).astype(np.float64).sum())
        norm = (mx + lse).astype(np.float32)
        p_log_base = (scale[:, None] * q + min_log_prob[:, None]).astype(np.float32)
        imax_base = p_log_base.argmax(axis=1)
        keep = p_log_base > np.float32(-16)
        terms = (np.exp(p_log_base) * (p_log_base - logits + norm[:, None])).astype(np.float32)
        kld = np.where(keep, terms, 0).astype(np.float64).sum(axis=1)
        self.kld += float(kld.sum())
        self.kld2 += float((kld * kld).sum())
        self.count += rows
        self.same_top += int((imax == imax_base).sum())
        p_diff = (np.exp(-nll) - np.exp(-nll_base)).astype(np.float32)
        p_diff2 = (p_diff * p_diff).astype(np.float64)
        self.p_diff += float(p_diff.astype(np.float64).sum())
        self.p_diff2 += float(p_diff2.sum())
        self.p_diff4 += float((p_diff2 * p_diff2).sum())
        self.klds.append(kld.astype(np.float32))
        self.dps.append(p_diff)


def _mean_unc(s: float, s2: float, n: int) -> tuple[float, float]:
    if n < 1:
        return 0.0, 0.0
    f = s / n
    df = s2 / n - f * f
    return f, (math.sqrt(df / (n - 1)) if df > 0 and n > 10 else 0.0)


def _percentile(v: np.ndarray, fraction: float) -> float:
    p = np.float32(fraction) * np.float32(len(v) - 1)
    ip = int(p)
    p = np.float32(p - ip)
    return float((np.float32(1) - p) * v[ip] + p * v[min(ip + 1, len(v) - 1)])


def report(s: KlSums) -> dict:
    n = s.count
    lp, lb = _mean_unc(s.nll, s.nll2, n), _mean_unc(s.nll_base, s.nll_base2, n)
    cov = (s.nll_nll_base / n - (s.nll / n) * (s.nll_base / n)) / (n - 1) if n >= 10 else 0.0
    ratio_unc = math.sqrt(lp[1] ** 2 + lb[1] ** 2 - 2 * cov)
    kl = _mean_unc(s.kld, s.kld2, n)
    klds = np.sort(np.concatenate(s.klds))
    mse = _mean_unc(s.p_diff2, s.p_diff4, n)
    same = s.same_top / n
    return {
        "scored": n,
        "ppl": [math.exp(lp[0]), math.exp(lp[0]) * lp[1]],
        "ppl_base": [math.exp(lb[0]), math.exp(lb[0]) * lb[1]],
        "ln_ppl_ratio": [lp[0] - lb[0], ratio_unc],
        "kld": list(kl),
        "kld_percentiles": {f: _percentile(klds, f) for f in (0.999, 0.99, 0.95, 0.90, 0.5, 0.10, 0.05, 0.01, 0.001)},
        "kld_max": float(klds[-1]),
        "p_diff_rms": [math.sqrt(mse[0]), 0.5 / math.sqrt(mse[0]) * mse[1] if mse[0] > 0 else 0.0],
        "same_top": [same, math.sqrt(same * (1 - same) / (n - 1))],
    }


def save_base(path_model: str, text: str, n_ctx: int, max_chunks: int | None) -> tuple[list[int], list[np.ndarray], dict]:
    """The `--kl-divergence-base` pass: tokens and each chunk's uint16 rows (kept in memory), plus the PPL."""
    llm = open_model(path_model, n_ctx)
    toks, n_chunk = chunks_of(llm, text, n_ctx, max_chunks)
    first = n_ctx // 2
    saved, nll = [], []
    for c in range(n_chunk):
        chunk = toks[c * n_ctx : (c + 1) * n_ctx]
        rows, v = encode_rows(chunk_logits(llm, chunk, n_ctx), np.array(chunk[first + 1 :], dtype=np.int64))
        saved.append(rows)
        nll.append(v)
    del llm
    allv = np.concatenate(nll)
    return toks, saved, {"chunks": n_chunk, "scored": int(allv.size), "ppl": math.exp(float(allv.mean()))}


def kl_against(path_model: str, toks: list[int], saved: list[np.ndarray], n_ctx: int) -> dict:
    """The `--kl-divergence` pass of another model over the saved tokens."""
    llm = open_model(path_model, n_ctx)
    first = n_ctx // 2
    s = KlSums()
    for c, base in enumerate(saved):
        chunk = toks[c * n_ctx : (c + 1) * n_ctx]
        s.add(chunk_logits(llm, chunk, n_ctx), base, np.array(chunk[first + 1 :], dtype=np.int64))
    del llm
    return report(s)
