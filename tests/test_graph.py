import numpy as np

from corpus_audit.transforms import graph

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
