"""Pure numpy cores of near-duplicate clustering: LSH buckets → star edges → components.

Node ids are uint64 (`shard_index << 32 | document_index`). Every function works on the part
of the data one partition holds, so the Beam wrappers in `clustering.py` can run them per
partition without any worker seeing all edges.

Connected components follow Kiveris et al., "Connected Components in MapReduce and Beyond"
(SoCC 2014): alternating large-star and small-star rounds turn every component into a star
around its smallest node. The rounds are unrolled in the pipeline (Beam has no loops) and
`check_stars` proves convergence, so a graph that needed more rounds fails loudly instead of
yielding split clusters.
"""
import numpy as np

from corpus_audit.transforms.dedup.tokens import mix64

_EMPTY = np.empty(0, dtype=np.uint64)


def sorted_unique(values):
    """np.unique(values) by sorting: numpy 2's hash-based unique is 15-20x slower on millions of
    mostly distinct integers (the keys, ids and n-grams of an audit), and the result is the same."""
    s = np.sort(np.asarray(values))
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


def partition_of(values, num_partitions):
    """Partition index of uint64 ids or keys; ids are mixed first so shards spread evenly."""
    return (mix64(np.asarray(values, dtype=np.uint64)) % np.uint64(num_partitions)).astype(np.int64)


def split_by_partition(num_partitions, by, *arrays):
    """Yield (partition, tuple of arrays) for every partition that has rows, `by` deciding."""
    if len(by) == 0:
        return
    yield from split_by_key(partition_of(by, num_partitions), *arrays)


def split_by_key(keys, *arrays):
    """Yield (key, tuple of arrays) for every distinct integer key, keys ascending, rows in order."""
    if len(keys) == 0:
        return
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    cuts = np.flatnonzero(np.diff(sorted_keys)) + 1
    for idx, first in zip(np.split(order, cuts), np.r_[0, cuts]):
        yield int(sorted_keys[first]), tuple(a[idx] for a in arrays)


def unique_edges(src, dst):
    """Distinct (src, dst) pairs without self-loops, sorted."""
    keep = src != dst
    src, dst = src[keep], dst[keep]
    if len(src) == 0:
        return _EMPTY, _EMPTY
    pairs = np.unique(np.stack([src, dst], axis=1), axis=0)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def bucket_edges(keys, nodes, max_bucket_size=None):
    """Star edges (member, smallest member) of every bucket with two or more nodes.

    Returns (src, dst, stats). A bucket larger than `max_bucket_size` (boilerplate, empty
    templates) links only its `max_bucket_size` smallest nodes; the rest are counted, not
    linked, so one hot key cannot glue thousands of pages together.
    """
    stats = {"buckets_shared": 0, "hot_buckets": 0, "hot_bucket_members_unlinked": 0}
    if len(keys) == 0:
        return _EMPTY, _EMPTY, stats
    order = np.lexsort((nodes, keys))
    keys, nodes = keys[order], nodes[order]
    # Drop repeats of the same node in a bucket (a document whose bands coincide).
    keep = np.ones(len(keys), dtype=bool)
    keep[1:] = (keys[1:] != keys[:-1]) | (nodes[1:] != nodes[:-1])
    keys, nodes = keys[keep], nodes[keep]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    group = np.repeat(np.arange(len(starts)), sizes)
    rank = np.arange(len(keys)) - starts[group]
    shared = sizes[group] >= 2
    stats["buckets_shared"] = int((sizes >= 2).sum())
    if max_bucket_size:
        hot = sizes > max_bucket_size
        stats["hot_buckets"] = int(hot.sum())
        stats["hot_bucket_members_unlinked"] = int((sizes[hot] - max_bucket_size).sum())
        shared &= rank < max_bucket_size
    is_edge = shared & (rank > 0)
    return nodes[is_edge], nodes[starts[group]][is_edge], stats


def lookup(sorted_nodes, values, query):
    """values[i] for each query node, where sorted_nodes[i] == node; KeyError if one is missing."""
    pos = np.searchsorted(sorted_nodes, query)
    pos = np.minimum(pos, max(len(sorted_nodes) - 1, 0))
    if len(query) and (len(sorted_nodes) == 0 or np.any(sorted_nodes[pos] != query)):
        raise KeyError("a node has no entry in this partition")
    return values[pos]


def verification_sketch(signatures):
    """The low 16 bits of each MinHash value, for the verification joins: half the bytes of the
    full signature in the two biggest shuffles. Two different values agree by chance with
    probability 1/65536, so a pair's estimate moves up by 1/num_perm in fewer than 0.2 % of
    pairs (100 permutations) and is unchanged otherwise."""
    return np.asarray(signatures).astype(np.uint16)


def signature_agreement(sig_a, sig_b):
    """Share of equal MinHash values per row: an unbiased estimate of Jaccard similarity."""
    return (sig_a == sig_b).mean(axis=1)


def _neighbourhood_minima(u, v):
    """Edges sorted by (u, v), the start of each u's run, and min(v) per run."""
    order = np.lexsort((v, u))
    u, v = u[order], v[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    return u, v, starts, np.minimum.reduceat(v, starts)


def large_star(u, v):
    """One large-star step over the adjacency of the nodes `u` (both directions present).

    Each node connects its larger neighbours to the smallest node of its neighbourhood.
    Returns directed edges (larger, smaller).
    """
    if len(u) == 0:
        return _EMPTY, _EMPTY
    u, v, starts, m = _neighbourhood_minima(u, v)
    m = np.minimum(m, u[starts])
    m_of = np.repeat(m, np.diff(np.r_[starts, len(u)]))
    larger = v > u
    return unique_edges(v[larger], m_of[larger])


def small_star(u, v):
    """One small-star step; input edges (u, v) with v < u, grouped by u.

    Each node connects itself and its smaller neighbours to the smallest of them.
    Returns directed edges (larger, smaller).
    """
    if len(u) == 0:
        return _EMPTY, _EMPTY
    u, v, starts, m = _neighbourhood_minima(u, v)
    m_of = np.repeat(m, np.diff(np.r_[starts, len(u)]))
    src = np.concatenate([v, u[starts]])
    dst = np.concatenate([m_of, m])
    return unique_edges(src, dst)


def both_directions(src, dst):
    return np.concatenate([src, dst]), np.concatenate([dst, src])


def check_stars(child, parent):
    """Problems that show a partition's edges are not yet stars around component minima.

    Inputs are every edge whose child lies in this partition plus, as `parent` entries with
    child == parent, the roots referenced from elsewhere. A node that is both a child and a
    parent, or a child with two parents, means more rounds were needed.
    """
    is_marker = child == parent
    c, _ = unique_edges(child[~is_marker], parent[~is_marker])  # the same edge may come twice
    multi = 0
    if len(c):
        cu, counts = np.unique(c, return_counts=True)
        multi = int((counts > 1).sum())
    chained = int(np.isin(child[is_marker], c).sum())
    return {"children_with_two_parents": multi, "parents_that_are_children": chained}


def components_reference(src, dst, max_rounds=64):
    """Single-process run of the same rounds, for tests: (child, root, rounds used)."""
    child, parent = unique_edges(np.maximum(src, dst), np.minimum(src, dst))
    for rounds in range(1, max_rounds + 1):
        a, b = large_star(*both_directions(child, parent))
        nc, np_ = small_star(a, b)
        if np.array_equal(nc, child) and np.array_equal(np_, parent):
            return child, parent, rounds
        child, parent = nc, np_
    raise RuntimeError("components_reference did not converge")


def choose_representatives(root, node, n_words, doc_id):
    """Per cluster (same root): size, and the representative with the most words.

    Ties go to the smallest doc_id, so the choice never depends on processing order.
    Returns (cluster_id per row, size per row, is_representative per row), rows sorted by
    (root, node).
    """
    order = np.lexsort((node, root))
    root, node, n_words, doc_id = root[order], node[order], n_words[order], doc_id[order]
    starts = np.flatnonzero(np.r_[True, root[1:] != root[:-1]])
    sizes = np.diff(np.r_[starts, len(root)])
    rep_index = np.empty(len(starts), dtype=np.int64)
    for g, (s, n) in enumerate(zip(starts, sizes)):
        best = s
        for i in range(s + 1, s + n):
            if n_words[i] > n_words[best] or (n_words[i] == n_words[best] and doc_id[i] < doc_id[best]):
                best = i
        rep_index[g] = best
    group = np.repeat(np.arange(len(starts)), sizes)
    is_rep = np.zeros(len(root), dtype=bool)
    is_rep[rep_index] = True
    return node, doc_id[rep_index][group], sizes[group].astype(np.int32), is_rep


def known_candidates(doc_keys, doc_nodes, entry_keys, entry_ids):
    """(doc, entry) candidate pairs: every document in a bucket that also holds known outputs,
    paired with the bucket's smallest entry (near-identical outputs share that entry)."""
    if len(doc_keys) == 0 or len(entry_keys) == 0:
        return _EMPTY, _EMPTY
    order = np.lexsort((entry_ids, entry_keys))
    keys, ids = entry_keys[order], entry_ids[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    keys, ids = keys[first], ids[first]
    pos = np.minimum(np.searchsorted(keys, doc_keys), len(keys) - 1)
    hit = keys[pos] == doc_keys
    return unique_edges(doc_nodes[hit], ids[pos[hit]])


def ngram_hits(doc_hashes, doc_nodes, entry_hashes, entry_ids, max_entries_per_ngram, pairs=True):
    """Sampled n-grams a document shares with known outputs, for one hash partition.

    Returns (hit_nodes, hit_counts): per document, how many of its sampled n-grams occur in
    any known output; and (pair_docs, pair_entries, pair_counts): per (document, output), how
    many they share, leaving out n-grams found in more than `max_entries_per_ngram` outputs
    (stock phrases say nothing about which output was copied). With `pairs=False` the pairs
    come back empty: they are the costly part.
    """
    empty = (_EMPTY, np.empty(0, dtype=np.int64)), (_EMPTY, _EMPTY, np.empty(0, dtype=np.int64))
    if len(doc_hashes) == 0 or len(entry_hashes) == 0:
        return empty
    order = np.lexsort((entry_ids, entry_hashes))
    e_hash, e_ids = entry_hashes[order], entry_ids[order]
    keep = np.r_[True, (e_hash[1:] != e_hash[:-1]) | (e_ids[1:] != e_ids[:-1])]
    e_hash, e_ids = e_hash[keep], e_ids[keep]
    lo = np.searchsorted(e_hash, doc_hashes, side="left")
    hi = np.searchsorted(e_hash, doc_hashes, side="right")
    found = hi > lo
    if not found.any():
        return empty
    hit_nodes, hit_counts = np.unique(doc_nodes[found], return_counts=True)
    if not pairs:
        return (hit_nodes, hit_counts), empty[1]
    attributable = found & (hi - lo <= max_entries_per_ngram)
    lo, n = lo[attributable], (hi - lo)[attributable]
    docs = np.repeat(doc_nodes[attributable], n)
    starts = np.repeat(lo - np.r_[0, np.cumsum(n)[:-1]], n)
    entries = e_ids[starts + np.arange(n.sum())]
    if len(docs) == 0:
        return (hit_nodes, hit_counts), empty[1]
    pairs, counts = np.unique(np.stack([docs, entries], axis=1), axis=0, return_counts=True)
    return (hit_nodes, hit_counts), (pairs[:, 0].copy(), pairs[:, 1].copy(), counts)


def best_by_node(nodes, targets, scores):
    """Per node, the target with the highest score (ties: smallest target)."""
    if len(nodes) == 0:
        return _EMPTY, _EMPTY, np.empty(0, dtype=scores.dtype if hasattr(scores, "dtype") else float)
    order = np.lexsort((targets, -np.asarray(scores, dtype=np.float64), nodes))
    nodes, targets, scores = nodes[order], targets[order], np.asarray(scores)[order]
    first = np.r_[True, nodes[1:] != nodes[:-1]]
    return nodes[first], targets[first], scores[first]


def sum_by_key(values, *keys):
    """Sum `values` over equal keys (one or two uint64 key arrays); keys come back sorted."""
    if len(values) == 0:
        return (keys[0] if len(keys) == 1 else keys), np.asarray(values)
    stacked = np.stack(keys, axis=1)
    uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=values, minlength=len(uniq)).astype(np.int64)
    cols = tuple(uniq[:, i].copy() for i in range(len(keys)))
    return (cols[0] if len(keys) == 1 else cols), sums


def id_hashes(ids, seed=0):
    """64-bit hashes of id strings, to shuffle documents by id."""
    import xxhash

    return np.fromiter((xxhash.xxh3_64_intdigest(str(i).encode("utf-8", "surrogatepass"), seed) for i in ids),
                       dtype=np.uint64, count=len(ids))


def unique_ids(nodes, ids):
    """Make ids unique: among nodes sharing an id, the first (smallest node = first shard in
    path order, then first record) keeps it and the others become `<id>~dup<k>`.

    Returns (renamed nodes, their new ids), both sorted by node."""
    order = np.lexsort((nodes, ids.astype(str)))
    nodes, ids = nodes[order], ids[order]
    renamed_nodes, new_ids = [], []
    start = 0
    for end in list(np.flatnonzero(ids[1:] != ids[:-1]) + 1) + [len(ids)]:
        for k in range(1, end - start):
            renamed_nodes.append(nodes[start + k])
            new_ids.append(f"{ids[start]}~dup{k}")
        start = end
    renamed_nodes = np.array(renamed_nodes, dtype=np.uint64)
    new_ids = np.array(new_ids, dtype=object)
    back = np.argsort(renamed_nodes)
    return renamed_nodes[back], new_ids[back]
