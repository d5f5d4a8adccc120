"""PyTorch reference for the chargen protocol (`--config protocol`), for side-by-side runs.

    TORCH=1 ./launch.sh python benchmarks/chargen_torch_reference.py --text PATH/shakespeare.txt

Same set-up as `./launch.sh chargen --config protocol`: embedding 64, 2-layer LSTM(256), batch 32
random 128-char windows from the first 90% of the text, Adam 2e-3, clip-norm 5, 3000 steps;
validation loss = mean cross-entropy (nats/char) over the first 256 non-overlapping 128-char
windows of the last 10%. Prints one `final:` line with val_loss and end-to-end tokens/s.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks.machine import cpu_model, header  # noqa: E402


class CharLSTM(nn.Module):
    def __init__(self, vocab, embed=64, hidden=256, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x):
        y, _ = self.rnn(self.embed(x))
        return self.head(y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--bf16", action="store_true",
                    help="run the forward pass under torch.autocast('cpu', bfloat16), the counterpart of "
                         "seqjax's --config.model.matmul_dtype=bfloat16")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    print(header(f"torch {torch.__version__} ({torch.get_num_threads()} threads)"), flush=True)
    text = open(args.text, encoding="utf-8").read()
    chars = sorted(set(text))
    lut = {c: i for i, c in enumerate(chars)}
    data = np.fromiter((lut[c] for c in text), np.int64, len(text))
    cut = int(len(data) * 0.9)
    train, val = data[:cut], data[cut:]
    model = CharLSTM(len(chars))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    T, B = args.seq, args.batch
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        starts = rng.integers(0, len(train) - T, size=B)
        chunk = torch.from_numpy(train[starts[:, None] + np.arange(T + 1)[None, :]])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(chunk[:, :-1])
        loss = loss_fn(logits.float().reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if step % 500 == 0:
            print(f"step {step} loss {loss.item():.3f} tokens/s {step * B * T / (time.perf_counter() - t0):.0f}",
                  flush=True)
    train_time = time.perf_counter() - t0
    model.eval()
    n = min(256, (len(val) - 1) // T)
    with torch.no_grad():
        idx = torch.from_numpy(np.arange(n)[:, None] * T + np.arange(T + 1)[None, :])
        chunk = torch.from_numpy(val)[idx]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(chunk[:, :-1])
        val_loss = loss_fn(logits.float().reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1)).item()
    result = {"val_loss": val_loss, "tokens_per_s": args.steps * B * T / train_time, "train_time_s": train_time,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "bf16_autocast": args.bf16,
              "seed": args.seed, "cpu": cpu_model()}
    print("final: " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
