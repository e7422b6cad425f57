"""Detector scores in the shard pass and the ensemble + provenance in the last pass.

Detectors need the text, so they run where the text is read; the ensemble also needs the
shuffle-derived evidence (known-output similarity, cluster size), so it runs when each
shard is written. Both load the model once per worker, in DoFn.setup().
"""
import numpy as np

from corpus_audit.schemas.documents import DETECTOR_NAMES, LM_COLUMNS
from corpus_audit.transforms.detectors.ensemble import NEAR_COPY_SIMILARITY
from corpus_audit.transforms.language import ENGLISH

LM_COLUMN_NAMES = [c[0] for c in LM_COLUMNS]

DEFAULT_MODEL = "default"


def load_detector_model(spec):
    """`None` → no detectors; "default" → the model shipped in the package; else a directory."""
    if spec is None:
        return None
    from corpus_audit.transforms.detectors.model_io import load_default_model, load_model

    model = load_default_model() if spec == DEFAULT_MODEL else load_model(spec)
    missing = set(DETECTOR_NAMES) - set(model.detector_names)
    if missing:
        raise ValueError(f"detector model {spec} lacks detectors {sorted(missing)}")
    return model


def ensemble_columns(model, batch, cols, start, stop, allow_domains, deny_domains, lm=None, prior=None,
                     seen=None):
    """synthetic_likelihood, provenance, provenance_reason, detector_version (and the LM columns
    when `lm`, this batch's lm_* and det_lm, is given) for rows start:stop of a shard; `batch` is
    the staged Arrow batch, `cols` the annotation columns. `share_bins` holds the combined
    scores' histogram per stack for the crawl's share estimate, over English documents only:
    the others have no detector scores, so no likelihood, and the share describes the English
    part of the crawl. `seen` holds this batch's seen-pages signals for the provenance table
    (`transforms/seen/core.provenance_signals`)."""
    from corpus_audit.transforms.detectors.provenance import decide_provenance, predates_cutoff

    n = stop - start
    similarity = cols["known_similarity"][start:stop]
    containment = cols["known_containment"][start:stop]
    lm = lm if lm is not None else {k: np.full(n, np.nan) for k in LM_COLUMN_NAMES}
    language = batch.column("language").to_pylist()
    crawl_dates = batch.column("crawl_date").to_pylist()
    dated = {k: v for k, v in (seen or {}).items() if k in ("seen_before", "first_seen_date", "seen_cutoff")}
    predated = predates_cutoff(crawl_dates, n, **dated)
    english = np.array([code == ENGLISH for code in language], dtype=bool)
    bins = {}
    if model is not None:
        scores = {name: batch.column("det_" + name).to_numpy(zero_copy_only=False).astype(np.float64)
                  for name in DETECTOR_NAMES}
        if model.has_lm:
            scores["lm"] = lm["det_lm"]
        likelihood = model.likelihood(scores, np.nan_to_num(similarity), np.nan_to_num(containment),
                                      cols["cluster_size"][start:stop], prior=prior)
        likelihood = np.where(english, likelihood, np.nan)
        if english.any():
            anchor = np.logical_or(*predated)
            bins = share_bins(model, {k: v[english] for k, v in scores.items()}, anchor[english],
                              np.nan_to_num(similarity[english]) >= NEAR_COPY_SIMILARITY)
        bins["not_english"] = np.array([(~english).sum()], dtype=np.float64)
        version = model.detector_version
    else:
        likelihood, version = np.full(n, np.nan), None
    provenance, reason = decide_provenance(
        likelihood, known_match_kind=cols["known_match_kind"][start:stop],
        known_containment=[None if np.isnan(c) else c for c in containment],
        crawl_date=crawl_dates, domain=batch.column("domain").to_pylist(),
        allow_domains=allow_domains, deny_domains=deny_domains,
        html_generator=batch.column("html_generator").to_pylist(),
        n_words=batch.column("n_words").to_pylist(), language=language, predated=predated, **(seen or {}))
    return {**lm, "synthetic_likelihood": np.asarray(likelihood, dtype=np.float64),
            "provenance": np.asarray(provenance, dtype=object),
            "provenance_reason": np.asarray(reason, dtype=object),
            "detector_version": np.full(n, version, dtype=object)}, bins


def share_bins(model, scores, anchor, near_copy):
    """{stack: bin counts} of the combined score for the crawl's share estimate: "fast" over
    every document, "full" over those the LM scored (the sample in --lm-detector sample), and
    "known" the near copies of known outputs, which are machine text whatever the scores say.
    "anchor.<stack>" and "dated_rest.<stack>" count the same scores in probit bins, split by
    whether a date puts the document before the cut-off (`anchor`): the anchored fit's inputs."""
    from corpus_audit.transforms.detectors.share import probit_counts

    ens = model.ensemble
    out = {"known": np.array([near_copy.sum()], dtype=np.float64)}
    rest = ~near_copy
    stacks = {"fast": (rest, lambda m: ens.fast_scores({k: v[m] for k, v in scores.items()}))}
    full = ens.has_optional(scores) & rest
    if full.any():
        stacks["full"] = (full, lambda m: {k: v[m] for k, v in scores.items()})
    for stack, (rows, pick) in stacks.items():
        if stack not in ens.share:
            continue
        raw = ens.raw(pick(rows))
        out[stack] = ens.share[stack].counts(raw)
        if ens.share[stack].offsets is not None:
            old = anchor[rows]
            out[f"anchor.{stack}"] = probit_counts(raw[old])
            out[f"dated_rest.{stack}"] = probit_counts(raw[~old])
    return out


def read_domain_list(path):
    """Domains from a text file, one per line; '#' starts a comment."""
    if not path:
        return ()
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as f:
        lines = f.read().decode("utf-8").splitlines()
    return tuple(sorted({line.split("#", 1)[0].strip().lower() for line in lines} - {""}))
