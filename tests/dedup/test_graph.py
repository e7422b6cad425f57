import numpy as np

from corpus_audit.transforms.dedup import graph

U = np.uint64


def union_find_roots(src, dst):
    parent = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(src.tolist(), dst.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent if find(x) != x}


def test_bucket_edges_are_stars_to_the_smallest_member():
    keys = np.array([7, 7, 7, 9, 9, 3], dtype=U)
    nodes = np.array([30, 10, 20, 40, 41, 50], dtype=U)
    src, dst, stats = graph.bucket_edges(keys, nodes)
    assert sorted(zip(src.tolist(), dst.tolist())) == [(20, 10), (30, 10), (41, 40)]
    assert stats["buckets_shared"] == 2


def test_hot_bucket_links_only_its_smallest_members_and_is_counted():
    keys = np.full(1000, 5, dtype=U)
    nodes = np.arange(1000, dtype=U)
    src, dst, stats = graph.bucket_edges(keys, nodes, max_bucket_size=100)
    assert len(src) == 99 and set(dst.tolist()) == {0} and src.max() == 99
    assert stats == {"buckets_shared": 1, "hot_buckets": 1, "hot_bucket_members_unlinked": 900}


def test_components_on_long_chains_and_random_graphs_match_union_find():
    rng = np.random.default_rng(0)
    cases = [np.arange(26, dtype=U), rng.permutation(np.arange(1, 2001, dtype=U))]
    for ids in cases:
        child, root, _ = graph.components_reference(ids[:-1], ids[1:])
        assert dict(zip(child.tolist(), root.tolist())) == union_find_roots(ids[:-1], ids[1:])
        assert set(root.tolist()) == {int(ids.min())}
    src = rng.integers(0, 5000, 3000).astype(U)
    dst = rng.integers(0, 5000, 3000).astype(U)
    child, root, _ = graph.components_reference(src, dst)
    assert dict(zip(child.tolist(), root.tolist())) == union_find_roots(src, dst)


def test_check_stars_flags_unfinished_components():
    # 3 -> 2 -> 1 is a path, not a star: 2 is both child and parent.
    child = np.array([3, 2, 2], dtype=U)
    parent = np.array([2, 1, 2], dtype=U)  # last entry: marker that 2 is someone's parent
    assert graph.check_stars(child, parent)["parents_that_are_children"] == 1
    child = np.array([5, 5], dtype=U)
    parent = np.array([1, 2], dtype=U)
    assert graph.check_stars(child, parent)["children_with_two_parents"] == 1
    child = np.array([5, 6, 1], dtype=U)
    parent = np.array([1, 1, 1], dtype=U)
    assert not any(graph.check_stars(child, parent).values())


def test_representative_has_most_words_then_smallest_id():
    root = np.array([1, 1, 1, 9, 9], dtype=U)
    node = np.array([1, 2, 3, 9, 10], dtype=U)
    words = np.array([100, 300, 300, 50, 50], dtype=np.int32)
    ids = np.array(["z", "m", "b", "q", "p"], dtype=object)
    nodes, cluster, size, rep = graph.choose_representatives(root, node, words, ids)
    got = {int(n): (c, int(s), bool(r)) for n, c, s, r in zip(nodes, cluster, size, rep)}
    assert got == {1: ("b", 3, False), 2: ("b", 3, False), 3: ("b", 3, True),
                   9: ("p", 2, False), 10: ("p", 2, True)}


def test_split_by_partition_keeps_rows_together_and_is_stable():
    keys = np.arange(1000, dtype=U)
    vals = keys * U(2)
    parts = list(graph.split_by_partition(8, keys, keys, vals))
    assert sorted(p for p, _ in parts) == list(range(8))
    for p, (k, v) in parts:
        assert np.array_equal(v, k * U(2))
        assert set(graph.partition_of(k, 8).tolist()) == {p}


E = U(1 << 63)


def test_known_candidates_pair_documents_with_the_smallest_entry_of_their_bucket():
    docs, entries = graph.known_candidates(
        np.array([5, 5, 7, 9], dtype=U), np.array([1, 2, 3, 4], dtype=U),
        np.array([5, 5, 9], dtype=U), np.array([E | U(3), E | U(2), E | U(8)], dtype=U))
    assert list(zip(docs.tolist(), (entries & ~E).tolist())) == [(1, 2), (2, 2), (4, 8)]


def test_ngram_hits_count_shared_samples_and_skip_stock_phrases_for_attribution():
    doc_h = np.array([10, 11, 12, 10, 20], dtype=U)
    doc_n = np.array([1, 1, 1, 2, 2], dtype=U)
    ent_h = np.array([10, 10, 12, 13, 20, 20, 20], dtype=U)
    ent_n = np.array([E | U(1), E | U(2), E | U(1), E | U(3), E | U(4), E | U(5), E | U(6)], dtype=U)
    (nodes, hits), (pd, pe, pc) = graph.ngram_hits(doc_h, doc_n, ent_h, ent_n, max_entries_per_ngram=2)
    assert dict(zip(nodes.tolist(), hits.tolist())) == {1: 2, 2: 2}  # n-gram 20 counts as a hit...
    pairs = {(int(d), int(e & ~E)): int(c) for d, e, c in zip(pd, pe, pc)}
    assert pairs == {(1, 1): 2, (1, 2): 1, (2, 1): 1, (2, 2): 1}  # ...but names no output


def test_sum_by_key_and_best_by_node():
    nodes, sums = graph.sum_by_key(np.array([1, 2, 3]), np.array([7, 5, 7], dtype=U))
    assert nodes.tolist() == [5, 7] and sums.tolist() == [2, 4]
    n, t, s = graph.best_by_node(np.array([1, 1, 2], dtype=U), np.array([7, 5, 9], dtype=U),
                                 np.array([0.5, 0.5, 0.9]))
    assert n.tolist() == [1, 2] and t.tolist() == [5, 9] and s.tolist() == [0.5, 0.9]


def test_check_stars_accepts_the_same_edge_reported_by_two_partitions():
    child = np.array([5, 5, 1], dtype=U)
    parent = np.array([1, 1, 1], dtype=U)
    assert not any(graph.check_stars(child, parent).values())


def test_unique_ids_keep_the_first_holder_and_rename_the_rest():
    nodes = np.array([(2 << 32) + 5, (0 << 32) + 7, (1 << 32) + 0, (0 << 32) + 1, 9], dtype=np.uint64)
    ids = np.array(["a", "a", "b", "a", "c"], dtype=object)
    renamed, new_ids = graph.unique_ids(nodes, ids)
    # "a" is held by shard 0 row 1 first; row 7 and shard 2 follow in node order.
    assert renamed.tolist() == [7, (2 << 32) + 5] and new_ids.tolist() == ["a~dup1", "a~dup2"]
    shuffled = np.array([3, 0, 4, 1, 2])
    again = graph.unique_ids(nodes[shuffled], ids[shuffled])
    assert again[0].tolist() == renamed.tolist() and again[1].tolist() == new_ids.tolist()
    assert len(graph.unique_ids(nodes[:1], ids[:1])[0]) == 0
