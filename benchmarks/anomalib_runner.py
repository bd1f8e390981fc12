"""Runs anomalib's Patchcore on an MVTec-layout folder; executed by anomalib_compare.py inside anomalib's
own virtual environment (it imports nothing from exdd_lab). Prints one JSON line with its numbers.

    python anomalib_runner.py ROOT CATEGORY WEIGHTS.safetensors --coreset 0.01 --image-size 256 --seed 0
"""
import argparse
import json
import resource
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("category")
    ap.add_argument("weights", help="timm-keyed safetensors of tf_efficientnet_lite0 (the same file exdd_lab uses)")
    ap.add_argument("--coreset", type=float, default=0.01)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from anomalib.models import Patchcore
    from lightning.pytorch import seed_everything
    from safetensors.torch import load_file

    seed_everything(args.seed)
    model = Patchcore(backbone="tf_efficientnet_lite0", layers=(2, 3), pre_trained=False,
                      coreset_sampling_ratio=args.coreset,
                      pre_processor=Patchcore.configure_pre_processor((args.image_size, args.image_size)))
    extractor = model.model.feature_extractor.feature_extractor
    state = load_file(args.weights)
    missing = [k for k in extractor.state_dict() if k not in state]
    if missing:
        sys.exit(f"weights file lacks {len(missing)} backbone tensors, e.g. {missing[:3]}")
    extractor.load_state_dict({k: state[k] for k in extractor.state_dict()})
    datamodule = MVTecAD(root=args.root, category=args.category, train_batch_size=8, eval_batch_size=8,
                         num_workers=0, seed=args.seed)
    engine = Engine(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                    default_root_dir=f"{args.root}/anomalib-results")
    start = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    results = engine.test(model=model, datamodule=datamodule, verbose=False)
    test_s = time.perf_counter() - start
    metrics = {k: float(v) for k, v in results[0].items()}
    print("RESULT " + json.dumps({
        "fit_s": fit_s, "predict_s": test_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "image_auroc": metrics.get("image_AUROC"), "pixel_auroc": metrics.get("pixel_AUROC"),
        "bank_patches": int(model.model.memory_bank.shape[0]), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
