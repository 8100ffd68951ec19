"""Interop fixture: the PyTorch reference U-Net, its weights, an input and its output,
saved as safetensors for the C++ test; or, with --check FILE, loads dpunet-exported
weights into the reference model (strict) to prove the names and shapes match; or, with
--train, one training-mode forward and backward at an odd size (pooling floors, the
decoder pads), saved with the weights before and the gradients and statistics after.
Usage: reference_model.py OUT_DIR | reference_model.py --check WEIGHTS N_CHANNELS N_CLASSES
       | reference_model.py --train OUT_DIR BILINEAR(0|1) HEIGHT WIDTH"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from reference_unet import UNet  # noqa: E402


def make(out_dir):
    torch.manual_seed(0)
    model = UNet(n_channels=1, n_classes=2, bilinear=False)
    with torch.no_grad():  # non-trivial batch-norm statistics, so buffers matter
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, "weights.safetensors"))
    save_file({"input": x[0].contiguous(), "probabilities": p[0].contiguous()}, os.path.join(out_dir, "io.safetensors"))


def check(path, n_channels, n_classes):
    model = UNet(n_channels=n_channels, n_classes=n_classes, bilinear=False)
    model.load_state_dict(load_file(path), strict=True)
    print("loaded", len(model.state_dict()), "tensors")


def train_step(out_dir, bilinear, height, width):
    torch.manual_seed(1)
    model = UNet(n_channels=1, n_classes=2, bilinear=bilinear)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, "weights.safetensors"))
    model.train()
    x = torch.rand(2, 1, height, width)
    # Fixed random weights on the output: every logit's gradient differs.
    w = torch.randn(2, 2, height, width)
    y = model(x)
    (y * w).sum().backward()
    after = {"grad." + k: p.grad.contiguous() for k, p in model.named_parameters()}
    after.update({"buffer." + k: b.contiguous() for k, b in model.named_buffers()})
    after.update({"input": x, "output_weights": w, "output": y.detach().contiguous()})
    save_file(after, os.path.join(out_dir, "step.safetensors"))


if __name__ == "__main__":
    if sys.argv[1] == "--check":
        check(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "--train":
        train_step(sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5]))
    else:
        make(sys.argv[1])
