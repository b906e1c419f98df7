"""EncNet vs FCN on ContextShapes: does the scene's context decide the look-alike backgrounds?

Trains EncNet (Encoding, EncHead, SE-loss) and FCN with the same backbone, data, recipe and
step budget (the demo's config by default) over several seeds, evaluates each on the full
validation images (single scale), and prints per-class IoU as mean ± std over the seeds, the
mean over the look-alike background classes, and the gap between the two models. It writes
a figure of validation images where the two seed-0 models differ most: image | ground truth |
FCN | EncNet.

    python benchmarks/context.py [--config configs/context_shapes.yaml] [--seeds 0 1 2]
        [--out runs/context_benchmark] [--figure docs/context_shapes_fcn_vs_encnet.png]
        [--parallel 2] [--ablate] [--set key=value ...]

It also reports where each model's object pixels go (right, labelled background, labelled
another object), on the validation images and on "mixed scenes" that put both objects of a
look-alike pair into one scene (does a model label an object by its look or by its scene?).
`--ablate` adds EncNet variants with one part changed (no SE-loss, FCN's head width, more
codewords), trained with the first seed.

Each model trains in its own process, `--parallel` at a time (on two cores the six
trainings took as long two at a time as one after the other would). Every model runs the
config's epochs x steps: the time limit and the time budget are turned off. A finished run
directory is evaluated again, not retrained (the trainer resumes after its last epoch), so an
interrupted benchmark resumes; after changing the config, use a new `--out`.
"""

import argparse
import concurrent.futures
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import emit, machine, run_case, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, "configs", "context_shapes.yaml")
ARCHS = {  # the overrides that make each model of the comparison
    "fcn": ["model.arch=fcn", "model.se_loss=false"],
    "encnet": ["model.arch=encnet", "model.se_loss=true"],
}
# EncNet with one part changed, for `--ablate`: what costs the objects their IoU?
ABLATIONS = {
    "encnet_no_se_loss": ["model.arch=encnet", "model.se_loss=false"],
    # EncHead as wide as FCN's head (576 / 4); MobileNetV3-Small's default gives it 64
    "encnet_head_144": ["model.arch=encnet", "model.se_loss=true", "model.head_channels=144"],
    "encnet_codes_32": ["model.arch=encnet", "model.se_loss=true", "model.num_codes=32"],
}
VARIANTS = {**ARCHS, **ABLATIONS}
MIXED_IMAGES = 40  # per look-alike pair, for the mixed-scene probe


def run_settings(arch, seed, out, sets):
    return [
        *sets,
        *VARIANTS[arch],
        f"train.seed={seed}",
        f"train.run_dir={os.path.join(out, f'{arch}_seed{seed}')}",
        "train.time_limit_minutes=null",
        "train.time_budget_minutes=null",  # every model runs the whole recipe, however slow
    ]


DISTANCE_BINS = (0, 40, 80, 120, 160, 200, 240, 10**6)  # pixels to the nearest object


def distance_to_objects(label, backgrounds, step=4):
    """`(H // step, W // step)` distances from the grid points `label[::step, ::step]` to the
    nearest object pixel (objects subsampled on the same grid): within `step` pixels."""
    import numpy as np

    grid = label[::step, ::step]
    objects = np.argwhere(~np.isin(grid, backgrounds)) * step
    points = np.argwhere(np.ones(grid.shape, bool)) * step
    if not len(objects):
        return np.full(grid.shape, np.inf)
    nearest = np.full(len(points), np.inf)
    for i in range(0, len(objects), 256):
        chunk = objects[i : i + 256]
        d = np.sqrt(((points[:, None, :] - chunk[None, :, :]) ** 2).sum(-1)).min(1)
        nearest = np.minimum(nearest, d)
    return nearest.reshape(grid.shape)


def object_errors(label, prediction, backgrounds):
    """Counts over the object pixels of one image: `[right, labelled background, labelled
    another object]`."""
    import numpy as np

    objects = ~np.isin(label, backgrounds)
    right = objects & (prediction == label)
    as_background = objects & np.isin(prediction, backgrounds)
    return np.array([right.sum(), as_background.sum(), (objects & ~right & ~as_background).sum()])


def mixed_scene_probe(model, size, count=MIXED_IMAGES, seed=1234):
    """Object pixels labelled right, in %, on scenes that hold both objects of a look-alike
    pair (an umbrella and a tractor on the grainy texture; a boat and a duck on the wavy
    one), which the dataset never shows. A model that labels objects by their look keeps its
    score; one that labels them by the scene paints both kinds as one."""
    import numpy as np

    from enc_tf.contracts.images import normalize
    from enc_tf.data.context_shapes import BACKGROUNDS, SCENES, render_scene

    rng = np.random.default_rng(seed)
    # every scene with the objects of all the scenes that share its texture (its pair)
    pairs = {
        scene: tuple(k for _, other, kinds in SCENES.values() if other == texture for k in kinds)
        for scene, (_, texture, _) in SCENES.items()
    }
    counts = np.zeros(3)
    for i in range(count * 2):
        scene = list(SCENES)[i % len(SCENES)]
        image, label = render_scene(scene, size, rng, objects=pairs[scene])
        logits = model(normalize(image[None]), training=False)["seg"]
        counts += object_errors(label, np.argmax(logits, -1)[0], BACKGROUNDS)
    return 100 * counts / counts.sum()


def worker(config_path, arch, seed, out, sets):
    """Trains (or finds) one model and evaluates it; emits its per-class IoU and its
    background accuracy by distance to the nearest object (`DISTANCE_BINS`)."""
    import numpy as np

    from enc_tf.config import load_config
    from enc_tf.data import PipelineConfig, build_dataset, sources_from_config
    from enc_tf.data.context_shapes import BACKGROUNDS
    from enc_tf.evaluation import evaluate, write_report
    from enc_tf.training import train

    config = load_config(config_path, run_settings(arch, seed, out, sets))
    model, _ = train(config)  # a finished run resumes after its last epoch: nothing to train
    _, val = sources_from_config(config.data)
    data = build_dataset(val, "eval", PipelineConfig(batch_size=8), aux=False, se_loss=False)
    scores, matrix = evaluate(model, data, val.classes.num_classes, val.ignore_index)
    write_report(config.train.run_dir, scores, matrix)
    right = np.zeros(len(DISTANCE_BINS) - 1)
    total = np.zeros(len(DISTANCE_BINS) - 1)
    objects = np.zeros(3)
    for images, targets in data:
        full = np.argmax(model(images, training=False)["seg"], -1)
        for label, whole in zip(targets["seg"].numpy(), full):
            objects += object_errors(label, whole, BACKGROUNDS)
            prediction = whole[::4, ::4]
            distance = distance_to_objects(label, BACKGROUNDS)
            background = np.isin(label[::4, ::4], BACKGROUNDS)
            bins = np.digitize(distance, DISTANCE_BINS) - 1
            correct = prediction == label[::4, ::4]
            for b in range(len(total)):
                chosen = background & (bins == b)
                right[b] += np.sum(correct[chosen])
                total[b] += np.sum(chosen)
    emit(
        {
            "arch": arch,
            "seed": seed,
            "iou": [100 * v for v in scores["per_class_iou"]],
            "by_distance": [100 * r / max(t, 1) for r, t in zip(right, total)],
            "distance_share": [100 * t / total.sum() for t in total],
            "objects": list(100 * objects / objects.sum()),
            "mixed": list(mixed_scene_probe(model, config.data.context_shapes_size)),
        }
    )


def mean_std(values):
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(results, classes, backgrounds):
    """The table rows and the look-alike verdict from `{arch: [per-class IoU per seed]}`."""

    def cell(values):
        m, s = mean_std(values)
        return f"{m:5.1f} ± {s:4.1f}"

    rows = []
    for c, name in enumerate(classes.names):
        fcn = [r[c] for r in results["fcn"]]
        enc = [r[c] for r in results["encnet"]]
        rows.append(
            [name, cell(fcn), cell(enc), f"{statistics.mean(enc) - statistics.mean(fcn):+.1f}"]
        )
    groups = {
        "mIoU (all classes)": range(len(classes.names)),
        "look-alike backgrounds": backgrounds,
        "objects": [c for c in range(len(classes.names)) if c not in backgrounds],
    }
    summary = {}
    for label, members in groups.items():
        per_seed = {
            arch: [statistics.mean(r[c] for c in members) for r in runs]
            for arch, runs in results.items()
        }
        summary[label] = {arch: mean_std(v) for arch, v in per_seed.items()}
        (fm, _), (em, _) = summary[label]["fcn"], summary[label]["encnet"]
        rows.append([label, cell(per_seed["fcn"]), cell(per_seed["encnet"]), f"{em - fm:+.1f}"])
    look = summary["look-alike backgrounds"]
    gap = look["encnet"][0] - look["fcn"][0]
    spread = max(look["encnet"][1], look["fcn"][1])
    verdict = (
        f"look-alike backgrounds: EncNet - FCN = {gap:+.2f} IoU; larger std {spread:.2f}; "
        f"gap > 2 x std: {'yes' if gap > 2 * spread else 'NO'}; "
        f"gap >= 5: {'yes' if gap >= 5 else 'NO'}"
    )
    return rows, verdict, gap, spread


def distance_rows(outcomes):
    rows = []
    for b, (lo, hi) in enumerate(zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:])):
        share = statistics.mean(o["distance_share"][b] for o in outcomes)
        cells = []
        for arch in ARCHS:
            m, s = mean_std([o["by_distance"][b] for o in outcomes if o["arch"] == arch])
            cells.append(f"{m:5.1f} ± {s:4.1f}")
        rows.append([f"{lo}-{hi}" if hi < 10**6 else f">= {lo}", f"{share:4.1f}%", *cells])
    return rows


def object_rows(outcomes, backgrounds, num_classes):
    """One row per model: its objects' IoU, where its object pixels went on the validation
    images, and on the mixed scenes (`mixed_scene_probe`); mean ± std over its seeds."""

    def cell(values):
        m, s = mean_std(values)
        return f"{m:5.1f} ± {s:4.1f}" if len(values) > 1 else f"{m:5.1f}"

    object_classes = [c for c in range(num_classes) if c not in backgrounds]
    rows = []
    for arch in VARIANTS:
        runs = [o for o in outcomes if o["arch"] == arch]
        if not runs:
            continue
        rows.append(
            [
                arch,
                str(len(runs)),
                cell([statistics.mean(o["iou"][c] for c in object_classes) for o in runs]),
                *(cell([o["objects"][k] for o in runs]) for k in range(3)),
                *(cell([o["mixed"][k] for o in runs]) for k in range(3)),
            ]
        )
    return rows


def figure(config_path, out, seed, sets, path, count=4):
    """Validation images where the two models' predictions differ most, one row each:
    image | ground truth | FCN | EncNet, with a legend; written to `path`."""
    import keras
    import numpy as np
    from PIL import Image

    from enc_tf.config import load_config
    from enc_tf.contracts.images import denormalize
    from enc_tf.data import PipelineConfig, build_dataset, sources_from_config
    from enc_tf.files import atomic_write
    from enc_tf.visualize import add_legend, colorize, side_by_side

    config = load_config(config_path, run_settings("encnet", seed, out, sets))
    _, val = sources_from_config(config.data)
    data = build_dataset(val, "eval", PipelineConfig(batch_size=8), aux=False, se_loss=False)
    models = {
        arch: keras.models.load_model(os.path.join(out, f"{arch}_seed{seed}", "model.keras"))
        for arch in ARCHS
    }
    rows = []
    for images, targets in data:
        preds = {a: np.argmax(m(images, training=False)["seg"], -1) for a, m in models.items()}
        for i in range(len(images)):
            label = targets["seg"][i].numpy()
            differ = int(np.sum(preds["fcn"][i] != preds["encnet"][i]))
            rows.append((differ, images[i].numpy(), label, preds["fcn"][i], preds["encnet"][i]))
    rows.sort(key=lambda r: -r[0])
    palette = val.classes.palette
    panels = [
        side_by_side(
            [denormalize(image), *(colorize(x, palette) for x in (label, fcn, enc))],
            ("image", "ground truth", "FCN", "EncNet"),
            scale=1,
        )
        for _, image, label, fcn, enc in rows[:count]
    ]
    shown = sorted({int(v) for r in rows[:count] for x in r[2:] for v in np.unique(x)})
    canvas = Image.new("RGB", (panels[0].width, sum(p.height for p in panels)), "white")
    for i, panel in enumerate(panels):
        canvas.paste(panel, (0, i * panel.height))
    picture = add_legend(canvas, val.classes, shown, columns=6)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    small = picture.quantize(128)  # the textures' noise does not compress: 0.4 instead of 1.4 MB
    atomic_write(path, lambda tmp: small.save(tmp, format="PNG", optimize=True))
    return [r[0] for r in rows[:count]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "context_benchmark"))
    parser.add_argument(
        "--figure", default=os.path.join(ROOT, "docs", "context_shapes_fcn_vs_encnet.png")
    )
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument(
        "--ablate",
        action="store_true",
        help=f"also train the EncNet variants {', '.join(ABLATIONS)} (first seed only)",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--worker", nargs=3, metavar=("ARCH", "SEED", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        arch, seed, out = args.worker
        return worker(args.config, arch, int(seed), out, args.set)

    from enc_tf.config import load_config
    from enc_tf.data import sources_from_config
    from enc_tf.data.context_shapes import BACKGROUNDS

    config = load_config(args.config, args.set)  # a config error stops here, before training
    classes = sources_from_config(config.data)[0].classes  # generated once, before the workers

    print(f"CPU: {machine()}")
    print(
        f"config {os.path.relpath(args.config, ROOT)} ({config.model.backbone}, output stride "
        f"{config.model.output_stride}, {config.train.epochs} x {config.train.steps_per_epoch} "
        f"steps of batch {config.train.batch_size}); seeds {args.seeds}",
        flush=True,
    )
    cases = [(arch, seed) for seed in args.seeds for arch in ARCHS]
    if args.ablate:
        cases += [(arch, args.seeds[0]) for arch in ABLATIONS]
    extra = [f"--set={s}" for s in args.set]

    def one(case):
        arch, seed = case
        return run_case(
            os.path.abspath(__file__),
            arch,
            seed,
            args.out,
            "--config",
            args.config,
            *extra,
            timeout=6 * 3600,
        )

    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        outcomes = list(pool.map(one, cases))
    outcomes.sort(key=lambda o: o["seed"])
    results = {arch: [o["iou"] for o in outcomes if o["arch"] == arch] for arch in ARCHS}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"seeds": args.seeds, "runs": outcomes}, f, indent=1)
    rows, verdict, _, _ = summarize(results, classes, BACKGROUNDS)
    print(
        f"\nIoU per class over {len(args.seeds)} seeds, mean ± std "
        "(validation images, single scale):"
    )
    print(table(["class", "FCN", "EncNet", "EncNet - FCN"], rows))
    print("\n" + verdict)
    print(
        "\nBackground pixels labelled right, by distance to the nearest object "
        "(mean ± std over the seeds):"
    )
    print(table(["distance (px)", "share of background", "FCN", "EncNet"], distance_rows(outcomes)))
    print(
        "\nObject pixels (validation images; and mixed scenes, where both objects of a "
        "look-alike pair share one scene), in %, mean ± std over the seeds run:"
    )
    print(
        table(
            ["model", "seeds", "objects IoU", "right", "as background", "as other object"]
            + ["mixed: right", "as background", "as other object"],
            object_rows(outcomes, BACKGROUNDS, classes.num_classes),
        )
    )
    differ = figure(args.config, args.out, args.seeds[0], args.set, args.figure)
    print(f"figure: {args.figure} (seed {args.seeds[0]}; pixels that differ: {differ})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
