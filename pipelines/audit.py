"""`corpus-audit audit`: wire the stages into one Beam pipeline and write audit.json."""
import datetime
import json
import re
import sys
import time
import uuid
from contextlib import nullcontext

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from corpus_audit.pipelines import runs
from corpus_audit.pipelines.local_runner import make_runner
from corpus_audit.schemas import SCHEMA_VERSION
from corpus_audit.transforms.audit import shard_pass, shuffle_check
from corpus_audit.transforms.audit.progress import RunProgress
from corpus_audit.transforms.audit.write_documents import SEEN_PARTS, WriteDocuments, write_dead_letters
from corpus_audit.transforms.dedup.clustering import NearDuplicateClusters
from corpus_audit.transforms.dedup.sketches import SketchFiles
from corpus_audit.transforms.detectors import lm_pass
from corpus_audit.transforms.detectors.scoring import load_detector_model, read_domain_list
from corpus_audit.transforms.known import index as known_index
from corpus_audit.transforms.known import matches as known_outputs
from corpus_audit.transforms.known.ngram_filter import BuildNgramFilter
from corpus_audit.transforms.read.shard_io import expand_inputs
from corpus_audit.transforms.seen import core as seen_core
from corpus_audit.transforms.seen import index as seen_index
from corpus_audit.transforms.seen import matches as seen_matches

OUTPUT_PATTERNS = ("documents-*.parquet", "dead_letters-*.parquet", "audit.json", "audit.json.tmp",
                   "_SUCCESS.tmp")
OUTPUT_DIRS = ("_staging", "known_outputs_index")


def merge_counts(dicts):
    total = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


class MergeCounts(beam.CombineFn):
    def create_accumulator(self):
        return {}

    def add_input(self, acc, d):
        return merge_counts([acc, d])

    def merge_accumulators(self, accs):
        return merge_counts(accs)

    def extract_output(self, acc):
        return acc


def existing_outputs(output_dir):
    found = []
    for pattern in OUTPUT_PATTERNS:
        found += [m.path for r in FileSystems.match([FileSystems.join(output_dir, pattern)])
                  for m in r.metadata_list]
    for name in OUTPUT_DIRS:
        found += runs.dir_entries(FileSystems.join(output_dir, name))
    return found


def lm_tier_on(settings, model):
    """Whether the audit runs the LM pass: an LM mode, and a model (the loaded `settings.detectors`)
    with the LM family."""
    return settings.lm.mode != "off" and model is not None and model.has_lm


def build_pipeline(p, shards, output_dir, staging_dir, settings, model, index=None, progress_tally=None,
                   seen=None):
    """The audit graph. `shards` is the sorted list of input paths; `index` is
    (directory, manifest) of the known-output index, or None; `progress_tally` is the
    driver's progress file when the workers share its machine; `seen` is (parts to read,
    SeenPlan) of the seen-pages index, or None; `model` is the driver's copy of the detector
    model (`settings.detectors` loaded; workers load their own)."""
    cfg = settings.minhash
    n = len(shards)
    entries, side = None, {}
    if index:
        index_dir, manifest = index
        entries = (p
                   | "ListIndexParts" >> beam.Create([(i, part["file"]) for i, part in enumerate(manifest["parts"])])
                   | "SpreadIndexParts" >> shuffle_check.CountedReshuffle()
                   | "ReadIndexParts" >> beam.ParDo(known_outputs.ReadIndexPart(
                       index_dir, cfg, settings.partitions, staging_dir)).with_outputs(
                           known_outputs.NGRAMS, known_outputs.ATTRS,
                           main=known_outputs.BANDS))
        side["ngram_filter"] = beam.pvalue.AsSingleton(
            entries[known_outputs.NGRAMS] | "IndexNgramFilter" >> beam.CombineGlobally(BuildNgramFilter()))
    stage = (p
             | "ListShards" >> beam.Create(list(enumerate(shards)))
             # Without a shuffle the runner fuses Create with the read and one worker reads all.
             | "SpreadShards" >> shuffle_check.CountedReshuffle()
             | "ReadAndStageShards" >> beam.ParDo(shard_pass.AuditShard(
                 staging_dir, cfg, settings.partitions, settings.max_doc_bytes, n,
                 fmt=settings.format, progress=settings.progress,
                 ngram_config=settings.ngram if index else None, detectors=settings.detectors,
                 progress_tally=progress_tally, seen=seen is not None,
             ), **side).with_outputs(*shard_pass.OUTPUTS, main=shard_pass.BANDS))

    bands, exact = stage[shard_pass.BANDS], stage[shard_pass.EXACT]
    if index:
        bands = (bands, entries[known_outputs.BANDS]) | "CrawlAndIndexBands" >> beam.Flatten()
    seen_parts, plan = seen if seen else ((), None)
    extra_counts = []
    if seen_parts:
        # The crawl's keys, as a Bloom filter, decide which index entries can meet it at all.
        crawl_keys = beam.pvalue.AsSingleton(
            (stage[shard_pass.BAND_KEYS], stage[shard_pass.EXACT], stage[shard_pass.URLS])
            | "CrawlKeys" >> beam.Flatten()
            | "CrawlKeyFilter" >> beam.CombineGlobally(BuildNgramFilter()))
        seen_entries = (p
                        | "ListSeenParts" >> beam.Create(list(enumerate(seen_parts)))
                        | "SpreadSeenParts" >> shuffle_check.CountedReshuffle()
                        | "ReadSeenParts" >> beam.ParDo(seen_matches.ReadSeenPart(
                            plan.index_dir, cfg, settings.partitions, plan.runs, staging_dir),
                            crawl_keys=crawl_keys).with_outputs(
                                seen_matches.EXACT, seen_matches.ATTRS, seen_matches.URLS,
                                "counts", main=seen_matches.BANDS))
        bands = (bands, seen_entries[seen_matches.BANDS]) | "CrawlAndSeenBands" >> beam.Flatten()
        exact = (exact, seen_entries[seen_matches.EXACT]) | "CrawlAndSeenExactKeys" >> beam.Flatten()
        extra_counts.append(seen_entries["counts"])
    sketches = SketchFiles(staging_dir, index_dir=index[0] if index else None,
                           index_parts=[part["file"] for part in index[1]["parts"]] if index else (),
                           seen_dir=plan.index_dir if plan else None, seen_parts=[part["file"] for part in seen_parts])

    clusters = ((bands, exact, stage[shard_pass.ATTRS])
                | "NearDuplicateClusters" >> NearDuplicateClusters(
                    settings.partitions, settings.cc_rounds, cfg.max_bucket_size,
                    cfg.verify_threshold, with_known_outputs=bool(index), with_seen=bool(seen_parts),
                    sketches=sketches, staging_dir=staging_dir))
    annotations = clusters["annotations"]
    if seen_parts:
        seen_ann = ((clusters["seen_similarities"], clusters["seen_exact"], seen_entries[seen_matches.ATTRS],
                     stage[shard_pass.URLS], seen_entries[seen_matches.URLS])
                    | "SeenPages" >> seen_matches.SeenMatches(settings.similarity_threshold))
        annotations = (annotations, seen_ann) | "WithSeenAnnotations" >> beam.Flatten()
    if index:
        known = ((clusters["known_similarities"], stage[shard_pass.NGRAMS], stage[shard_pass.NGRAM_TOTALS],
                  entries[known_outputs.NGRAMS], entries[known_outputs.ATTRS])
                 | "KnownOutputMatches" >> known_outputs.KnownOutputMatches(
                     settings.partitions, settings.similarity_threshold, settings.containment_threshold))
        annotations = (annotations, known) | "AllAnnotations" >> beam.Flatten()
    if lm_tier_on(settings, model):
        lm = ({"staged": stage[shard_pass.STAGED], "annotations": annotations}
              | "JoinAnnotationsForLM" >> shuffle_check.CountedCoGroupByKey()
              | "ScoreRepresentatives" >> beam.ParDo(lm_pass.ScoreRepresentatives(
                  settings.lm, bool(index))).with_outputs(
                      lm_pass.SHARED, lm_pass.MEMBERS, "counts", main="own"))
        given = ({lm_pass.SHARED: lm[lm_pass.SHARED], lm_pass.MEMBERS: lm[lm_pass.MEMBERS]}
                 | "LMToClusterMembers" >> shuffle_check.CountedCoGroupByKey()
                 | "GiveToMembers" >> beam.FlatMap(lm_pass.give_to_members))
        annotations = (annotations, lm.own, given) | "WithLMAnnotations" >> beam.Flatten()
        extra_counts.append(lm["counts"])

    written = ({"staged": stage[shard_pass.STAGED], "annotations": annotations}
               | "JoinAnnotationsByShard" >> shuffle_check.CountedCoGroupByKey()
               | "WriteDocuments" >> beam.ParDo(WriteDocuments(
                   output_dir, staging_dir, n, known_checked=bool(index), detectors=settings.detectors,
                   allow_domains=read_domain_list(settings.allow_domains),
                   deny_domains=read_domain_list(settings.deny_domains), lm=settings.lm, prior=settings.prior,
                   seen=plan)).with_outputs(SEEN_PARTS, main="counts"))
    parts_path = FileSystems.join(staging_dir, "seen_parts.json")
    (written[SEEN_PARTS]
     | "CollectSeenParts" >> beam.combiners.ToList()
     | "WriteSeenParts" >> beam.Map(lambda parts: _write_text(parts_path, json.dumps(
         sorted(parts, key=lambda r: r["file"]), sort_keys=True))))

    dead = (stage[shard_pass.DEAD]
            | "CollectDeadLetters" >> beam.combiners.ToList()
            | "WriteDeadLetters" >> beam.Map(
                lambda rows: {"dead_letters_written": write_dead_letters(rows, output_dir, staging_dir)}))

    counts_path = FileSystems.join(staging_dir, "counts.json")
    ((stage[shard_pass.COUNTS], clusters["counts"], written.counts, dead, *extra_counts)
     | "AllCounts" >> beam.Flatten()
     | "SumCounts" >> beam.CombineGlobally(MergeCounts())
     | "WriteCounts" >> beam.Map(lambda c: _write_text(counts_path, json.dumps(c, sort_keys=True))))
    return counts_path


def _write_text(path, text):
    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))


def _read_text(path):
    with FileSystems.open(path) as f:
        return f.read().decode("utf-8")


def seen_summary(counts, seen, settings):
    """audit.json's `seen`: documents seen before (exact, near), new, and URLs whose text changed."""
    if seen is None:
        return None
    parts, plan = seen
    return {"index": plan.index_dir, "entries": sum(p["entries"] for p in parts), "parts_read": len(parts),
            "entries_shipped": counts.get("seen_entries_shipped", 0),
            "exact": counts.get("seen.exact", 0), "near": counts.get("seen.near", 0),
            "new": counts.get("seen.new", 0), "url_seen": counts.get("seen.url_seen", 0),
            "url_changed": counts.get("seen.url_changed", 0), "run_date": plan.run_date,
            "cutoff": plan.cutoff.isoformat(), "similarity_threshold": settings.similarity_threshold}


def summarise(counts, shards, settings, model, seconds, index=None, human_reference=None):
    """audit.json: what was read, written, dropped and clustered, and the invariant; `model` is the
    loaded `settings.detectors` (None without detectors)."""
    dead_by_reason = {k.split(".", 1)[1]: v for k, v in sorted(counts.items())
                      if k.startswith("dead_letter.")}
    skipped = {k[len("skipped_"):]: v for k, v in sorted(counts.items()) if k.startswith("skipped_")}
    docs = counts.get("documents_written", 0)
    dead = counts.get("dead_letters_written", 0)
    read = counts.get("records_read", 0)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "inputs": list(settings.inputs),
        "shards": len(shards),
        "records_read": read,
        "documents_written": docs,
        "dead_letters": dead,
        "dead_letters_by_reason": dead_by_reason,
        "records_skipped_by_kind": skipped,
        "duplicates": counts.get("duplicates", 0),
        "clusters": counts.get("clusters_multi", 0),
        "exact_dup_documents": counts.get("exact_dup_documents", 0),
        "duplicate_ids_renamed": counts.get("duplicate_ids_renamed", 0),
        "too_short_documents": counts.get("too_short", 0),
        # documents per `language` (null counted as "und"), most documents first
        "languages": dict(sorted(((k.split(".", 1)[1], v) for k, v in counts.items() if k.startswith("language.")),
                                 key=lambda kv: (-kv[1], kv[0]))),
        "hot_buckets": counts.get("lsh_hot_buckets", 0),
        "hot_bucket_members_unlinked": counts.get("lsh_hot_bucket_members_unlinked", 0),
        "candidate_pairs": counts.get("candidate_pairs", 0),
        "candidate_pairs_rejected": counts.get("candidate_pairs_rejected", 0),
        "minhash": settings.minhash.to_dict(),
        "cc_rounds": settings.cc_rounds,
        "known_outputs": None if index is None else {
            "index": index[0],
            "entries": index[1]["entries"],
            "models": known_index.models_of(index[1]),
            "documents_matched": sum(v for k, v in counts.items() if k.startswith("known_kind.")),
            "matched_by_kind": {k.split(".", 1)[1]: v for k, v in sorted(counts.items())
                                if k.startswith("known_kind.")},
            "matched_by_model": {k.split(".", 1)[1]: v for k, v in sorted(counts.items())
                                 if k.startswith("known_match.")},
            "candidate_pairs": counts.get("known_candidate_pairs", 0),
            "ngram_samples": counts.get("ngram_samples", 0),
            "ngram_samples_shuffled": counts.get("ngram_samples_shuffled", 0),
            "similarity_threshold": settings.similarity_threshold,
            "containment_threshold": settings.containment_threshold,
        },
        "seconds": round(seconds, 3),
        # Worker seconds summed over workers; shuffles and clustering are the rest of the wall time.
        "stage_seconds": {k.split(".", 1)[1]: round(v, 2) for k, v in sorted(counts.items())
                          if k.startswith("stage_seconds.")},
        "documents_per_second": round(read / seconds, 1) if seconds > 0 else None,
    }
    scored = counts.get("likelihood_scored", 0)
    summary["synthetic"] = {
        "detector_version": model.detector_version if model else None,
        "prior": settings.prior,
        "lm_detector": {"mode": settings.lm.mode if model is not None and model.has_lm else "off",
                        "sample_rate": settings.lm.sample_rate if settings.lm.mode == "sample" else None,
                        "tokens": settings.lm.tokens, "documents_scored": counts.get("lm_scored", 0),
                        "documents_given_representative": counts.get("lm_given_to_members", 0)},
        "share_estimate": share_estimate(model, counts, human_reference),
        "score_histograms": score_histograms(model, counts),
        "documents_scored": scored,
        "share_likelihood_ge_0_5": round(counts.get("likelihood_ge_0_5", 0) / scored, 4) if scored else None,
        "mean_likelihood": round(counts.get("likelihood_sum", 0.0) / scored, 4) if scored else None,
        "provenance": {k.split(".", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("provenance.")},
        "provenance_reason": {k.split(".", 1)[1]: v for k, v in sorted(counts.items())
                              if k.startswith("provenance_reason.")},
    }
    if read != docs + dead:
        raise RuntimeError(f"records read ({read}) != documents written ({docs}) + dead letters ({dead})")
    if counts.get("shards", 0) != len(shards):
        raise RuntimeError(f"{counts.get('shards', 0)} of {len(shards)} shards were read")
    return summary


def _bins(counts, stack, size):
    out = np.zeros(size)
    prefix = f"share_bin.{stack}."
    for k, v in counts.items():
        if k.startswith(prefix):
            out[int(k[len(prefix):])] = v
    return out


def score_histograms(model, counts):
    """audit.json's probit-bin counts of the combined score per stack, of the documents dated
    before the cut-off and of the others (known copies left out): what a later audit reads
    when it names this run as its --human-reference."""
    from corpus_audit.transforms.detectors.share import Z_EDGES, Z_CENTRES

    if model is None:
        return None
    stacks = {}
    for stack, ref in sorted(model.ensemble.share.items()):
        if ref.offsets is not None:
            stacks[stack] = {part: [int(c) for c in _bins(counts, f"{part}.{stack}", len(Z_CENTRES))]
                             for part in ("anchor", "dated_rest")}
    return {"detector_version": model.detector_version, "probit_edges": [float(Z_EDGES[0]), float(Z_EDGES[-1])],
            "bins": len(Z_CENTRES), "stacks": stacks} if stacks else None


def load_human_reference(path, model):
    """{stack: probit-bin counts} of every scored document of an earlier run the user names as
    human text of this crawl's sites, or None. Raises AuditError (exit 2) before any work when
    the run is unusable: incomplete, without histograms, or scored by another detector model."""
    if not path:
        return None
    if model is None:
        raise runs.AuditError("--human-reference needs the detectors (drop --no-detectors)")
    run = runs.resolve_run(path)
    hist = (run.summary.get("synthetic") or {}).get("score_histograms")
    if not hist:
        raise runs.AuditError(f"--human-reference {run.path}: its audit.json has no score histograms "
                              f"(audited without detectors or by an older corpus-audit); re-audit it")
    if hist["detector_version"] != model.detector_version:
        raise runs.AuditError(f"--human-reference {run.path} was scored by detector {hist['detector_version']}; "
                              f"this audit uses {model.detector_version}, whose scores are not comparable: re-audit it")
    return {"run": run.path, **{stack: np.asarray(parts["anchor"], float) + np.asarray(parts["dated_rest"], float)
                                for stack, parts in hist["stacks"].items()}}


def share_estimate(model, counts, human_reference=None):
    """The crawl's synthetic share {value, low, high, method, ...} among its English documents
    (the others have no detector scores and are counted in `not_english`, in neither part of
    the share). Near copies of known outputs count as machine text; the share among the other
    documents is fitted on the histograms of their combined detector score that the write pass
    counted. With at least MIN_ANCHOR documents dated before the cut-off (plus those of a
    --human-reference run), those are the human reference of the crawl's own domains and the
    rest is fitted against them (`anchored`, measured to hold far better on unseen domains);
    else against the development data's references, moved to the crawl's own human level. Of
    the stacks (fast, and with the LM on the documents it scored) the anchored one with the
    smaller measured error is reported, else the narrower interval."""
    from corpus_audit.transforms.detectors.share import Z_CENTRES

    if model is None or not model.ensemble.share:
        return None
    bins = lambda stack, size: _bins(counts, stack, size)
    extra = human_reference or {}

    known = bins("known", 1)[0]
    rest = bins("fast", len(model.ensemble.share["fast"].edges) + 1).sum() if "fast" in model.ensemble.share else 0
    total = known + rest
    dated_total = bins("anchor.fast", len(Z_CENTRES)).sum()  # every stack's dated documents are human
    estimates = {}
    for stack, ref in sorted(model.ensemble.share.items()):
        dated, undated = bins(f"anchor.{stack}", len(Z_CENTRES)), bins(f"dated_rest.{stack}", len(Z_CENTRES))
        anchor = dated + extra.get(stack, 0)
        fits = {"anchored": ref.anchored_estimate(undated, anchor),
                "development data": ref.unanchored_estimate(bins(stack, len(ref.edges) + 1), dated + undated)}
        by_reference = {}
        for name, est in fits.items():
            if est is None or total == 0:
                continue
            # documents outside the fit: known copies (machine) and, when anchored, the anchor (human)
            fitted = rest - (dated_total if name == "anchored" else 0)
            scaled = {k: round((known + est[k] * fitted) / total, 4)
                      for k in ("value", "low", "high", "sampling_low", "sampling_high", "mixture", "tail")
                      if est.get(k) is not None}
            by_reference[name] = {
                **est, **scaled, "documents": int(total), "fitted_documents": est["documents"],
                "known_output_copies": int(known), "anchor_documents": int(anchor.sum()) if name == "anchored" else 0,
                **({"human_reference_run": extra["run"], "human_reference_documents": int(extra[stack].sum())}
                   if name == "anchored" and stack in extra else {}),
                "not_english": int(bins("not_english", 1)[0]),
                "stack": "fast detectors" if stack == "fast" else "with the LM", "reference": name}
        if by_reference:
            first, *other = by_reference.values()
            estimates[stack] = {**first, **({"without_anchor": {k: other[0][k] for k in ("value", "low", "high")}}
                                            if other else {})}
    if not estimates:
        return None
    anchored = {k: e for k, e in estimates.items() if e["reference"] == "anchored"}
    if anchored:  # the stack whose anchored fit erred least on held-out sources, at this value
        pick = min(anchored, key=lambda k: (model.ensemble.share[k].widening(anchored[k]["value"], anchored=True),
                                            anchored[k]["high"] - anchored[k]["low"], k))
        best = anchored[pick]
    else:
        best = min(estimates.values(), key=lambda e: (e["high"] - e["low"], e["stack"]))
    return {**best, "by_stack": estimates}


def open_known_outputs(settings, beam_args, output_dir):
    """(index dir, manifest) checked for use, or None. A glob of output files is indexed
    first, into OUTPUT/known_outputs_index. Raises KnownIndexError before any audit work."""
    if not settings.known_outputs:
        return None
    location = settings.known_outputs.rstrip("/")
    if not FileSystems.exists(known_index.manifest_path(location)):
        if not any(ch in location for ch in "*?[") and not FileSystems.match([location])[0].metadata_list:
            raise known_index.KnownIndexError(f"--known-outputs {location}: no index and no files there")
        from corpus_audit.pipelines.index import build_or_add

        built = FileSystems.join(output_dir, "known_outputs_index")
        runs.remove_dir(built)  # prepare_run_dir() already removed it; kept for direct callers
        raw = type(settings)(**{**settings.__dict__, "inputs": [location], "overwrite": False})
        build_or_add(raw, beam_args, built, append=False, progress=settings.progress)
        location = built
    manifest = known_index.read_manifest(location)
    known_index.check_compatible(manifest, known_index.index_params(settings.minhash, settings.ngram), location)
    # A re-run never matches the synthetic documents --update-index took from its own first attempt.
    if any(p.get("run_id") == settings.run_id for p in manifest["parts"]):
        parts = [p for p in manifest["parts"] if p.get("run_id") != settings.run_id]
        manifest = {**manifest, "parts": parts, "entries": sum(p["entries"] for p in parts)}
        if parts:
            known_index.check_parts(manifest, location)
        return location, manifest
    known_index.check_parts(manifest, location)
    return location, manifest


def run_date_of(settings):
    """The run's date: --run-date, else the run id when it is an ISO date (the default run id
    and a scheduler's logical date are), else today (UTC)."""
    if settings.run_date:
        return datetime.date.fromisoformat(str(settings.run_date)).isoformat()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", settings.run_id or ""):
        try:
            return datetime.date.fromisoformat(settings.run_id).isoformat()
        except ValueError:
            pass
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def open_seen_index(settings):
    """(parts to read, SeenPlan) of --seen-index, checked before any work, or None. A path
    without an index is fine: the index is created when this run commits."""
    if not settings.seen_index:
        return None
    location = settings.seen_index.rstrip("/")
    manifest = seen_index.open_index(location, seen_index.index_params(settings.minhash))
    parts = seen_index.parts_before_run(manifest, settings.run_id)
    seen_index.check_parts(location, parts, settings.minhash.num_perm, settings.minhash.num_bands)
    plan = seen_core.SeenPlan(location, settings.run_id, run_date_of(settings),
                              seen_index.runs_of({"parts": parts}, settings.run_id), uuid.uuid4().hex[:8],
                              settings.seen_cutoff, settings.minhash)
    return parts, plan


_SEEN_PART_ERROR = re.compile(r"seen index part [^\n'\"\[]*")


def _seen_failure(exc):
    """The one-line SeenIndexError a damaged part raised on a worker, however the runner wrapped it."""
    found = _SEEN_PART_ERROR.search(str(exc))
    return seen_index.SeenIndexError(found.group(0).strip()) if found else None


def prepare_run_dir(run_dir, overwrite, progress=True):
    """Make `run_dir` ready for a new run. A committed run needs --overwrite; the leftovers of
    an interrupted run (no marker) are removed, so re-running it gives the same result."""
    complete = runs.is_complete(run_dir)
    stale = existing_outputs(run_dir)
    if complete and not overwrite:
        raise FileExistsError(f"{run_dir} already holds a complete audit run; pass --overwrite or "
                              "choose another --run-id")
    if complete:
        FileSystems.delete([runs.join(run_dir, runs.SUCCESS)])  # uncommit before deleting anything
    elif stale and progress:
        print(f"[corpus-audit] {run_dir}: removing {len(stale)} files of an interrupted run", file=sys.stderr)
    if stale:
        FileSystems.delete(stale)


def run_audit(settings, beam_args):
    """Run the audit into OUTPUT/<run-id>/; returns the audit.json dict. Raises
    FileNotFoundError for empty globs."""
    start = time.monotonic()
    shards = expand_inputs(settings.inputs)
    output_dir = runs.join(settings.output.rstrip("/"), runs.check_run_id(settings.run_id))
    options = PipelineOptions(beam_args)
    runner = make_runner(options)  # an endpoint that does not answer fails before the run dir is touched
    model = load_detector_model(settings.detectors)  # so does a model that cannot be read
    human_reference = load_human_reference(settings.human_reference, model)  # or an unusable reference run
    if lm_tier_on(settings, model):  # or an LM tier that reads other prefixes than its head, or cannot score
        from corpus_audit.transforms.detectors.lm import check_runtime, check_tokens

        check_tokens(settings.lm.tokens, model.meta.get("lm") or {})
        check_runtime(settings.lm.tokens)
    seen = open_seen_index(settings)  # and a seen index that cannot be used
    prepare_run_dir(output_dir, settings.overwrite, settings.progress)
    # A fixed name: the leftovers of a killed run are found and removed by the next attempt.
    staging_dir = FileSystems.join(output_dir, "_staging")
    FileSystems.mkdirs(staging_dir) if not FileSystems.exists(staging_dir) else None

    try:
        index = open_known_outputs(settings, beam_args, output_dir)
        # The local runner's workers share this machine, so the driver can sum their progress.
        with RunProgress(len(shards)) if settings.progress and runner is not None else nullcontext() as progress:
            try:
                with beam.Pipeline(runner=runner, options=options) as p:
                    counts_path = build_pipeline(p, shards, output_dir, staging_dir, settings, model, index,
                                                 progress_tally=progress.path if progress else None, seen=seen)
            except Exception as exc:
                failure = _seen_failure(exc)
                if failure is not None:
                    raise failure from exc
                raise
        shuffles = shuffle_check.check(p.result)
        counts = json.loads(_read_text(counts_path))
        summary = summarise(counts, shards, settings, model, time.monotonic() - start, index, human_reference)
        summary["seen"] = seen_summary(counts, seen, settings)
        summary["shuffles"] = shuffles
        summary["run_id"] = settings.run_id
        summary["run_dir"] = output_dir
        seen_parts = json.loads(_read_text(FileSystems.join(staging_dir, "seen_parts.json"))) if seen else None
        runs.write_json(FileSystems.join(output_dir, "audit.json"), summary)
    finally:
        runs.remove_dir(staging_dir)
    runs.commit(output_dir, settings.run_id)
    if seen:
        # After the run's commit, once per run id: a re-run replaces the run's parts.
        summary["seen_index_update"] = seen_index.commit_run(
            seen[1].index_dir, seen_index.index_params(settings.minhash), settings.run_id, seen[1].run_date,
            seen_parts)
    return summary
