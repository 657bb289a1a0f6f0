"""Offline training: adversarial step, lambda_adv 0, exact resume, 2-process DDP, learning."""
from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

import unlabeled_train
from engine.offline import OfflineTrainer, PairedForward
from tests.training_runs import run_killed_at_step
from utils.checkpoint import load_checkpoint

SMALL = ["--model_scale", "xxs", "--size", "64", "96", "--batch_size", "2", "--workers", "0",
         "--max_steps_per_epoch", "3", "--no_tensorboard", "--val_every", "0", "--lr", "1e-3"]


def _args(data, out, *extra):
    return unlabeled_train.get_parser().parse_args(["--data_dir", str(data), "--output_dir", str(out), *SMALL, *extra])


def _weights(path):
    return load_checkpoint(path)["model"]


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_adversarial_step_updates_discriminator(synthetic_dir, tmp_path):
    tr = OfflineTrainer(_args(synthetic_dir, tmp_path, "--epochs", "1", "--max_steps_per_epoch", "1"))
    before = {k: v.clone() for k, v in tr.disc.state_dict().items()}
    out = tr.fit()
    assert "adv" in out and "d" in out
    after = tr.disc.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


class _ConvBN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)

    def forward(self, image, flow):
        f = self.bn(self.conv(image + flow))
        return {"logits": f[:, :1], "features": f}


def test_paired_forward_keeps_batchnorm_batches_apart():
    torch.manual_seed(0)
    net = _ConvBN().train()
    lab, unl = torch.rand(2, 3, 5, 5), 3 + 5 * torch.rand(3, 3, 5, 5)  # a very different unlabeled domain
    zeros_l, zeros_u = torch.zeros_like(lab), torch.zeros_like(unl)
    alone = _ConvBN().train()
    alone.load_state_dict(net.state_dict())
    ref_l, ref_u = alone(lab, zeros_l), alone(unl, zeros_u)

    out, u_out = PairedForward(net)(lab, zeros_l, unl, zeros_u)
    assert torch.allclose(out["features"], ref_l["features"]) and torch.allclose(u_out["features"], ref_u["features"])
    assert u_out["features"].shape[0] == 3
    # Without an unlabeled batch it is the bare network.
    out, none = PairedForward(net)(lab, zeros_l)
    assert none is None and out["features"].shape == ref_l["features"].shape


def test_lambda_zero_equals_supervised_only(synthetic_dir, tmp_path):
    unlabeled_train.main(["--data_dir", str(synthetic_dir), "--output_dir", str(tmp_path / "a"), *SMALL,
                          "--epochs", "2", "--lambda_adv", "0"])
    unlabeled_train.main(["--data_dir", str(synthetic_dir), "--output_dir", str(tmp_path / "b"), *SMALL,
                          "--epochs", "2", "--start_adv", "5"])
    unlabeled_train.main(["--data_dir", str(synthetic_dir), "--output_dir", str(tmp_path / "c"), *SMALL,
                          "--epochs", "2"])
    a, b, c = (_weights(tmp_path / x / "checkpoint_last.pth") for x in "abc")
    assert _same(a, b)
    assert not _same(a, c)  # the adversarial run really differs


@pytest.mark.parametrize("options", [["--lr_step", "1"],
                                     ["--lr_schedule", "cosine", "--warmup_steps", "4", "--no_decay_norm_bias",
                                      "--ema_decay", "0.9"]])
def test_kill_and_resume_matches_uninterrupted(synthetic_dir, tmp_path, monkeypatch, options):
    extra = ["--epochs", "2", *options]
    unlabeled_train.main(["--data_dir", str(synthetic_dir), "--output_dir", str(tmp_path / "full"), *SMALL, *extra])

    # killed at the second step of epoch 1 (3 steps per epoch)
    run_killed_at_step(monkeypatch, ["--data_dir", str(synthetic_dir), "--output_dir", str(tmp_path / "cut"), *SMALL,
                                     *extra], 5)
    assert load_checkpoint(tmp_path / "cut/checkpoint_last.pth")["epoch"] == 0
    unlabeled_train.main(["--data_dir", str(synthetic_dir), "--output_dir", str(tmp_path / "cut"), *SMALL, *extra,
                          "--resume", "auto"])
    full, cut = load_checkpoint(tmp_path / "full/checkpoint_last.pth"), load_checkpoint(tmp_path / "cut/checkpoint_last.pth")
    assert _same(full["model"], cut["model"]) and _same(full["discriminator"], cut["discriminator"])
    assert full["sched_g"] == cut["sched_g"] and cut["epoch"] == 1
    if "--ema_decay" in options:  # the average and the trained weights both resume
        assert _same(full["model_train"], cut["model_train"]) and full["ema_updates"] == cut["ema_updates"] == 6
        assert not _same(full["model"], full["model_train"])


def test_resume_rejects_weights_only_file(synthetic_dir, tmp_path):
    torch.save({"model": {}}, tmp_path / "bare.pth")
    with pytest.raises(ValueError, match="--finetune"):
        OfflineTrainer(_args(synthetic_dir, tmp_path / "r", "--epochs", "1", "--resume", str(tmp_path / "bare.pth")))


def test_resume_with_other_optimizer_groups_names_the_file_and_the_option(synthetic_dir, tmp_path):
    """A run trained with --encoder_lr_mult 0.1 (two parameter groups) resumed at 1 (one group)
    is refused with the checkpoint and the differing option named, not torch's bare message."""
    unlabeled_train.main(["--data_dir", str(synthetic_dir), "--output_dir", str(tmp_path / "r"), *SMALL,
                          "--epochs", "1", "--encoder_lr_mult", "0.1"])
    ckpt = tmp_path / "r" / "checkpoint_last.pth"
    with pytest.raises(ValueError, match=r"checkpoint_last\.pth: its opt_g state does not fit .*"
                                         r"--encoder_lr_mult 1\.0 \(checkpoint: 0\.1\)"):
        OfflineTrainer(_args(synthetic_dir, tmp_path / "r", "--epochs", "1", "--resume", "auto"))
    assert load_checkpoint(ckpt)["epoch"] == 0  # the run is left as it was


def test_finetune_loads_weights_only(synthetic_dir, tmp_path):
    unlabeled_train.main(["--data_dir", str(synthetic_dir), "--output_dir", str(tmp_path / "s1"), *SMALL, "--epochs", "1"])
    tr = OfflineTrainer(_args(synthetic_dir, tmp_path / "s2", "--epochs", "1", "--labeled_datasets", "DAVIS-2016",
                              "--finetune", str(tmp_path / "s1/checkpoint_last.pth")))
    assert tr.start_epoch == 0
    assert _same(tr.net.state_dict(), _weights(tmp_path / "s1/checkpoint_last.pth"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from utils.distributed import cleanup

    args = unlabeled_train.get_parser().parse_args(["--data_dir", data, "--output_dir", out, *SMALL, "--epochs", "1",
                                                    "--device", "cpu", "--sync-bn", "--val_every", "1",
                                                    "--val_datasets", "FBMS"])
    tr = OfflineTrainer(args)
    tr.fit()
    net = tr.net
    torch.save({"params": {k: v.detach() for k, v in net.named_parameters()},
                "buffers": {k: v for k, v in net.named_buffers() if v.is_floating_point()}},
               os.path.join(out, f"weights_rank{rank}.pt"))
    cleanup()


def test_two_process_ddp_gloo_same_weights(synthetic_dir, tmp_path):
    out = tmp_path / "ddp"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(synthetic_dir), str(out)), nprocs=2, join=True)
    ckpt = load_checkpoint(out / "checkpoint_last.pth")
    assert ckpt["epoch"] == 0 and (out / "log.txt").is_file()
    # Each rank saved its own weights after training: DDP must have kept the parameters
    # identical. BatchNorm buffers are broadcast from rank 0 before each forward, so they
    # differ only by each rank's last local update.
    digests = sorted(out.glob("weights_rank*.pt"))
    assert len(digests) == 2
    a, b = (torch.load(p) for p in digests)
    assert _same(a["params"], b["params"])
    assert all(torch.allclose(a["buffers"][k], b["buffers"][k], atol=0.5, rtol=0.5) for k in a["buffers"])


class _EncDec(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rgb_encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
        self.decoder = torch.nn.Conv2d(4, 1, 1)


def test_param_groups_split_encoders_and_norms_and_biases():
    from engine.loop import param_groups

    net = _EncDec()
    enc_w, enc_bias = net.rgb_encoder[0].weight, net.rgb_encoder[0].bias
    bn_w, bn_b = net.rgb_encoder[1].weight, net.rgb_encoder[1].bias
    dec_w, dec_b = net.decoder.weight, net.decoder.bias
    groups = param_groups(net, 1e-3, 0.1, weight_decay=0.05)
    got = [({id(p) for p in g["params"]}, g["lr"], g["weight_decay"]) for g in groups]
    assert got == [({id(enc_w)}, pytest.approx(1e-4), 0.05), ({id(enc_bias), id(bn_w), id(bn_b)}, pytest.approx(1e-4), 0.0),
                   ({id(dec_w)}, 1e-3, 0.05), ({id(dec_b)}, 1e-3, 0.0)]
    # Without a decay split: two groups by lr only; the optimizer's own decay applies to both.
    plain = param_groups(net, 1e-3, 0.1)
    assert [len(g["params"]) for g in plain] == [4, 2] and "weight_decay" not in plain[0]


def test_warmup_cosine_by_hand():
    from engine.loop import warmup_cosine

    f = warmup_cosine(10, 4)
    assert [f(k) for k in range(3)] == pytest.approx([0.25, 0.5, 0.75])
    assert f(4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.4))) and f(10) == pytest.approx(0.0)
    assert warmup_cosine(10, 0)(5) == pytest.approx(0.5)  # no warm-up: CosineAnnealingLR's curve


def test_warmup_needs_the_cosine_schedule(synthetic_dir, tmp_path):
    with pytest.raises(ValueError, match="--warmup_steps 5 needs --lr_schedule cosine"):
        OfflineTrainer(_args(synthetic_dir, tmp_path / "w", "--epochs", "1", "--warmup_steps", "5"))
    assert not (tmp_path / "w").exists()  # refused before anything is written


def test_ema_weights_are_the_hand_computed_average_and_what_is_saved(synthetic_dir, tmp_path, monkeypatch):
    snaps = []
    real_step = OfflineTrainer.step

    def step(self, batch, unl):
        out = real_step(self, batch, unl)
        snaps.append({k: v.detach().clone() for k, v in self.net.state_dict().items()})
        return out

    monkeypatch.setattr(OfflineTrainer, "step", step)
    tr = OfflineTrainer(_args(synthetic_dir, tmp_path / "e", "--epochs", "1", "--lambda_adv", "0",
                              "--ema_decay", "0.5"))
    tr.fit()
    # timm's warm-up: decay 0 at the first update, then min(0.5, 1 - (1 + (k - 1)) ** -2/3) at update k.
    ema = {k: v.clone().double() for k, v in snaps[0].items()}
    for k_upd, snap in enumerate(snaps[1:], start=2):
        d = min(0.5, 1 - (1 + (k_upd - 1)) ** (-2 / 3))
        for k, v in snap.items():
            if v.is_floating_point():
                ema[k] = d * ema[k] + (1 - d) * v.double()
    ckpt = load_checkpoint(tmp_path / "e/checkpoint_last.pth")
    floats = [k for k, v in ckpt["model"].items() if v.is_floating_point()]
    assert all(torch.allclose(ckpt["model"][k].double(), ema[k], atol=1e-6) for k in floats)
    assert _same(ckpt["model_train"], snaps[-1]) and not _same(ckpt["model"], ckpt["model_train"])
