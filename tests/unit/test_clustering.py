"""k-means segmentation: it finds the demo store's planted kinds of buyer, names them by what
sets them apart, is reproducible from its seed and refuses inputs it cannot segment."""

import time

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from shared.ingest import demo
from shared.ingest.demo import DemoConfig, DemoStore, generate
from shared.segments import clustering
from shared.segments.clustering import (
    ClusteringResult,
    assign,
    default_features,
    feature_spec,
    segment_kmeans,
)

Table = dict[str, np.ndarray]
DAY_US = 86_400e6
# Words a name may use for a cluster made mostly of one planted kind.
KIND_WORDS = {
    "one_time_gifter": ("one-time", "lapsed", "gift"),
    "loyal_parent": ("kids", "home", "loyal", "high-spend", "long-standing"),
    "bargain_hunter": ("deals", "household", "small-basket", "mobile"),
    "premium_professional": ("big-ticket", "skincare", "fragrance", "desktop"),
    "young_trendsetter": ("young", "fashion", "beauty", "new", "mobile"),
}


def demo_features(store: DemoStore) -> tuple[Table, np.ndarray]:
    """Per-customer features as a job would build them from the database, for the customers
    with an order (prospects have nothing to cluster on), and their planted kinds."""
    customers, orders, items, events = (
        store.customers,
        store.orders,
        store.order_items,
        store.events,
    )
    n, row = customers.n_rows, orders["customer_row"]
    end = np.datetime64(demo.DEFAULT_END.replace(tzinfo=None), "us")
    last = np.full(n, np.datetime64("1970-01-01", "us"))
    np.maximum.at(last, row, orders["placed_at"])
    frequency = np.bincount(row, minlength=n).astype(np.float64)
    monetary = np.bincount(row, weights=orders["total_cents"] / 100, minlength=n)
    table: Table = {
        "recency_days": (end - last).astype(np.int64) / DAY_US,
        "frequency": frequency,
        "monetary": monetary,
        "aov": monetary / np.maximum(frequency, 1),
        "tenure_days": (end - customers["created_at"]).astype(np.int64) / DAY_US,
        "age": (end.astype("datetime64[D]") - customers["birth_date"]).astype(int) / 365.25,
    }
    who = events["customer_row"]
    known = who >= 0
    visits = np.bincount(who[known], minlength=n)
    mobile = np.bincount(who[known], weights=events["device"][known] == b"mobile", minlength=n)
    # no tracked visit: unknown, left as NaN for the clustering to impute
    table["mobile_share"] = np.divide(mobile, visits, out=np.full(n, np.nan), where=visits > 0)
    buyer = row[items["order_row"]]
    quantity = items["quantity"].astype(np.float64)
    bought = np.maximum(np.bincount(buyer, weights=quantity, minlength=n), 1)
    for category in demo.CATEGORIES:
        mine = quantity * (items["category"] == category.encode())
        table[f"category_{category}"] = np.bincount(buyer, weights=mine, minlength=n) / bought
    for channel in demo.PREFERRED_CHANNELS:
        preferred = customers["preferred_channel"] == channel.encode()
        table[f"channel_{channel}"] = preferred.astype(np.float64)
    buyers = frequency > 0
    kinds = customers["kind"][buyers].astype(str)
    return {name: values[buyers] for name, values in table.items()}, kinds


@pytest.fixture(scope="module")
def store_features() -> tuple[Table, np.ndarray]:
    return demo_features(generate(DemoConfig(n_customers=3000, seed=7)))


def _show(title: str, result: ClusteringResult, kinds: np.ndarray | None = None) -> None:
    lines = [f"\n{title}: k={result.k} ({'chosen' if result.k_chosen else 'given'})"]
    if kinds is not None:
        lines.append(f"  ARI vs planted kinds: {adjusted_rand_score(kinds, result.labels):.3f}")
    for s in result.scores:
        lines.append(
            f"  k={s.k}: silhouette {s.silhouette:.3f}, Davies-Bouldin {s.davies_bouldin:.2f}"
        )
    for c in result.clusters:
        lines.append(f"  [{c.label}] {c.size:5d} {c.name}: {c.description}")
    print("\n".join(lines))  # noqa: T201


def _dominant(kinds: np.ndarray, members: np.ndarray) -> tuple[str, float]:
    names, counts = np.unique(kinds[members], return_counts=True)
    return str(names[counts.argmax()]), float(counts.max() / counts.sum())


def test_k_chosen_by_silhouette_recovers_the_planted_kinds(
    store_features: tuple[Table, np.ndarray],
) -> None:
    table, kinds = store_features
    result = segment_kmeans(table, default_features(table), seed=0)
    _show("k chosen from 2..8", result, kinds)
    assert result.k_chosen
    assert [s.k for s in result.scores] == list(range(2, 9))
    assert result.k == len(demo.KINDS)
    assert result.silhouette == max(s.silhouette for s in result.scores)
    assert adjusted_rand_score(kinds, result.labels) >= 0.8


def test_k_given_as_the_number_of_kinds_recovers_them(
    store_features: tuple[Table, np.ndarray],
) -> None:
    table, kinds = store_features
    result = segment_kmeans(table, None, k=len(demo.KINDS), seed=0)
    _show("k given", result, kinds)
    assert not result.k_chosen
    assert [s.k for s in result.scores] == [len(demo.KINDS)]
    assert adjusted_rand_score(kinds, result.labels) >= 0.8


def test_names_are_unique_and_say_what_sets_each_cluster_apart(
    store_features: tuple[Table, np.ndarray],
) -> None:
    table, kinds = store_features
    result = segment_kmeans(table, None, k=len(demo.KINDS), seed=0)
    names = [c.name for c in result.clusters]
    assert len(set(names)) == len(names)
    for cluster in result.clusters:
        kind, purity = _dominant(kinds, result.labels == cluster.label)
        assert purity > 0.8, (cluster.name, kind)
        assert any(w in cluster.name.lower() for w in KIND_WORDS[kind]), (cluster.name, kind)
        assert 1 <= len(cluster.traits) <= 3
        assert cluster.name.endswith("buyers")
        assert cluster.description.startswith(("Median", "On average"))
    gifters = next(c for c in result.clusters if _dominant(kinds, result.labels == c.label)[0]
                   == "one_time_gifter")  # fmt: skip
    assert "one-time" in gifters.name.lower() or "lapsed" in gifters.name.lower()
    assert "1 order" in gifters.description


def test_centroids_are_medians_and_means_in_the_features_units(
    store_features: tuple[Table, np.ndarray],
) -> None:
    table, kinds = store_features
    result = segment_kmeans(table, None, k=len(demo.KINDS), seed=0)
    assert sum(c.size for c in result.clusters) == len(kinds)
    assert [c.size for c in result.clusters] == sorted((c.size for c in result.clusters),
                                                       reverse=True)  # fmt: skip
    assert sum(c.share for c in result.clusters) == pytest.approx(1.0)
    for cluster in result.clusters:
        members = result.labels == cluster.label
        assert cluster.centroid["frequency"] == np.median(table["frequency"][members])
        assert cluster.statistic["frequency"] == "median"
        mobile = table["mobile_share"][members]
        assert cluster.centroid["mobile_share"] == pytest.approx(np.nanmean(mobile))
        assert cluster.statistic["mobile_share"] == "mean"
        for feature in cluster.traits:
            assert abs(cluster.z_scores[feature]) >= 0.5
    premium = max(result.clusters, key=lambda c: c.z_scores["aov"])
    assert premium.z_scores["aov"] > 1
    assert (premium.centroid["aov"] or 0) > 150  # dollars per order, as given


def test_the_same_seed_gives_the_same_segments(
    store_features: tuple[Table, np.ndarray],
) -> None:
    table, _ = store_features
    first, second = segment_kmeans(table, None, seed=3), segment_kmeans(table, None, seed=3)
    assert np.array_equal(first.labels, second.labels)
    assert [c.name for c in first.clusters] == [c.name for c in second.clusters]
    assert first.scores == second.scores


@pytest.mark.parametrize(("store_seed", "seed"), [(7, 1), (7, 2), (11, 0), (3, 5)])
def test_other_seeds_still_recover_the_kinds(store_seed: int, seed: int) -> None:
    table, kinds = demo_features(generate(DemoConfig(n_customers=3000, seed=store_seed)))
    chosen = segment_kmeans(table, None, seed=seed)
    given = segment_kmeans(table, None, k=len(demo.KINDS), seed=seed)
    print(  # noqa: T201
        f"\nstore seed {store_seed}, seed {seed}: chosen k={chosen.k} "
        f"ARI {adjusted_rand_score(kinds, chosen.labels):.3f}; "
        f"given k=5 ARI {adjusted_rand_score(kinds, given.labels):.3f}"
    )
    assert adjusted_rand_score(kinds, chosen.labels) >= 0.8
    assert adjusted_rand_score(kinds, given.labels) >= 0.8


def test_silhouettes_match_scikit_learn_when_every_row_counts_once() -> None:
    x = np.column_stack(list(_blobs(900).values())).astype(np.float32)
    labelings = [KMeans(k, n_init=1, random_state=0).fit(x).labels_ for k in (2, 3, 5)]
    ours = clustering._silhouettes(x, labelings, np.ones(len(x)))
    theirs = [silhouette_score(x.astype(np.float64), labels) for labels in labelings]
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_a_sampled_silhouette_estimates_the_full_one(
    store_features: tuple[Table, np.ndarray],
) -> None:
    table, kinds = store_features
    full = segment_kmeans(table, None, seed=0)
    sampled = segment_kmeans(table, None, seed=0, sample_size=800)
    assert sampled.k == full.k
    for ours, exact in zip(sampled.scores, full.scores, strict=True):
        assert ours.silhouette == pytest.approx(exact.silhouette, abs=0.03)
    assert adjusted_rand_score(kinds, sampled.labels) >= 0.8


def test_assign_puts_customers_in_the_nearest_cluster(
    store_features: tuple[Table, np.ndarray],
) -> None:
    table, _ = store_features
    result = segment_kmeans(table, None, k=5, seed=0)
    assert (assign(result, table) == result.labels).mean() > 0.99
    some = {name: values[:10] for name, values in table.items()}
    assert assign(result, some).shape == (10,)


def _blobs(n: int, seed: int = 0) -> Table:
    """Three well-separated kinds of buyer with a few raw features."""
    rng = np.random.default_rng(seed)
    kind = np.arange(n) % 3
    return {
        "frequency": np.array([1.0, 12.0, 4.0])[kind] + rng.poisson(1, n),
        "aov": np.array([60.0, 25.0, 200.0])[kind] * rng.lognormal(0, 0.2, n),
        "mobile_share": np.clip(np.array([0.2, 0.9, 0.1])[kind] + rng.normal(0, 0.05, n), 0, 1),
    }


def test_fewer_customers_than_k_is_refused() -> None:
    table = _blobs(4)
    with pytest.raises(ValueError, match="k=5"):
        segment_kmeans(table, ["frequency", "aov"], k=5)
    with pytest.raises(ValueError, match="at least 2 customers"):
        segment_kmeans(_blobs(1), ["frequency", "aov"])
    with pytest.raises(ValueError, match="at least 2 customers"):
        segment_kmeans(_blobs(0), ["frequency", "aov"], k=2)
    small = segment_kmeans(table, ["frequency", "aov"])  # the range shrinks to what 4 allow
    assert [s.k for s in small.scores] == [2, 3]


def test_unknown_or_missing_features_are_refused() -> None:
    table = _blobs(30)
    with pytest.raises(ValueError, match="unknown feature 'lifetime_value'.*recency_days"):
        segment_kmeans(table, ["frequency", "lifetime_value"])
    with pytest.raises(ValueError, match="not in the table: age"):
        segment_kmeans(table, ["frequency", "age"])
    with pytest.raises(ValueError, match="unknown feature 'category_'"):
        feature_spec("category_")
    with pytest.raises(ValueError, match="at least one feature"):
        segment_kmeans(table, [])
    with pytest.raises(ValueError, match="1-d"):
        segment_kmeans({**table, "aov": table["aov"][:-1]}, ["frequency", "aov"])


def test_dynamic_category_and_channel_features_are_accepted() -> None:
    spec = feature_spec("category_home_decor")
    assert spec.unit == "share"
    assert spec.high == "home decor"
    assert feature_spec("channel_app").high == "app-first"


def test_a_constant_column_is_harmless_and_never_names_a_segment() -> None:
    table = {**_blobs(600), "age": np.full(600, 40.0)}
    result = segment_kmeans(table, ["frequency", "aov", "mobile_share", "age"], k=3, seed=0)
    truth = np.arange(600) % 3
    assert adjusted_rand_score(truth, result.labels) > 0.95
    for cluster in result.clusters:
        assert cluster.z_scores["age"] == 0
        assert cluster.centroid["age"] == 40
        assert "age" not in cluster.traits


def test_missing_values_are_imputed_and_left_out_of_centroids() -> None:
    table = _blobs(600)
    table["age"] = np.where(np.arange(600) % 5 == 0, np.nan, 30 + np.arange(600) % 20)
    table["tenure_days"] = np.full(600, np.nan)  # nobody's known
    features = ["frequency", "aov", "mobile_share", "age", "tenure_days"]
    result = segment_kmeans(table, features, k=3, seed=0)
    assert adjusted_rand_score(np.arange(600) % 3, result.labels) > 0.95
    for cluster in result.clusters:
        members = result.labels == cluster.label
        assert cluster.centroid["age"] == np.nanmedian(table["age"][members])
        assert cluster.centroid["tenure_days"] is None  # not NaN: it goes into JSON
        assert cluster.z_scores["tenure_days"] == 0
        assert "nan" not in cluster.description.lower()


def test_customers_all_alike_are_refused() -> None:
    table = {"frequency": np.ones(50), "aov": np.full(50, 20.0)}
    with pytest.raises(ValueError, match="distinct profiles"):
        segment_kmeans(table, ["frequency", "aov"])
    with pytest.raises(ValueError, match="distinct profiles"):
        segment_kmeans(table, ["frequency", "aov"], k=2)


def test_descriptions_use_the_stores_currency_and_units() -> None:
    result = segment_kmeans(_blobs(600), ["frequency", "aov"], k=3, seed=0, currency="EUR")
    big = max(result.clusters, key=lambda c: c.z_scores["aov"])
    assert big.name.startswith("Big-ticket")
    assert f"€{big.centroid['aov'] or 0:,.0f} per order" in big.description
    other = segment_kmeans(_blobs(600), ["frequency", "aov"], k=3, seed=0, currency="VND")
    assert "VND per order" in max(other.clusters, key=lambda c: c.z_scores["aov"]).description


def test_names_are_disambiguated_deterministically() -> None:
    table = _blobs(900, seed=1)
    result = segment_kmeans(table, ["frequency", "aov", "mobile_share"], k=8, seed=0)
    names = [c.name for c in result.clusters]
    assert len(set(names)) == len(names)
    again = segment_kmeans(table, ["frequency", "aov", "mobile_share"], k=8, seed=0)
    assert names == [c.name for c in again.clusters]


def test_two_hundred_thousand_customers_segment_quickly() -> None:
    store = generate(DemoConfig(n_customers=200_000, seed=1, events=False))
    table, kinds = demo_features(store)
    del table["mobile_share"]  # no events generated
    started = time.perf_counter()
    result = segment_kmeans(table, None, seed=0)
    elapsed = time.perf_counter() - started
    ari = adjusted_rand_score(kinds, result.labels)
    print(f"\n{len(kinds)} customers: k={result.k} in {elapsed:.1f} s, ARI {ari:.3f}")  # noqa: T201
    assert elapsed < 60
    assert ari >= 0.8
