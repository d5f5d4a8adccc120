"""Spell out a number: ``"407"`` → ``four hundred seven``. A generated N → M task, no files.

The source is the number's digits, one token each (``N`` = number of digits). The target is its
English name in American style, one word per token, no "and" and no hyphens
(``"1000005"`` → ``one million five``; ``"42"`` → ``forty two``), so ``M`` differs from ``N`` in
both directions (``"1000000"``: N=7, M=2; ``"777"``: N=3, M=4). Order matters everywhere: the
word for a digit depends on its place, and the scale words (``thousand``, ``million``, ...) are
only known once the decoder knows how many digits are left, which is what the encoder must
carry to the decoder.

Numbers: a digit count ``d`` uniform in ``[min_digits, max_digits]``; the leading digit is 1-9
(0-9 when ``d == 1``), each later digit is 0 with probability ``zero_prob`` and else uniform in
1-9, so that skipped groups and missing tens ("one million five") are common rather than rare.
Up to 21 digits (the scales run to quintillion).

Examples ``{src, src_lengths, tgt_in, tgt_out, tgt_lengths}`` are numpy arrays padded to fixed
shapes (``src``: ``max_digits``; targets: :func:`max_target_len`), so the model compiles once:

* ``tgt_in``  = ``<bos> w_1 .. w_M``  (teacher forcing inputs)
* ``tgt_out`` = ``w_1 .. w_M <eos>``  (what to predict); ``tgt_lengths = M + 1``

Training example ``i`` is drawn with Grain's per-index generator seeded by the run seed, so step
``s``'s batch is a pure function of (seed, s). The validation set is fixed by ``val_seed``
(independent of the training seed) and stratified: the same number of examples for every digit
count, so that exact-match can be broken down by input length. Short numbers also occur in
training (there are only 100 two-digit strings); long ones almost never do.
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np

from experiments.seq2seq.configs import default
from seqjax.cells import LINEAR_KINDS
from seqjax.data import ArraySource, eval_batches, train_batches
from seqjax.data.pipeline import shuffle_seed
from seqjax.train import Data
from seqjax.train.config import check_inactive, check_keys
from seqjax.train.config import is_int as _is_int
from seqjax.train.config import require as _need

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen").split()
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion")
MAX_DIGITS = 3 * len(SCALES)  # 21

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SRC_TOKENS = (PAD, *"0123456789")
TGT_TOKENS = (PAD, BOS, EOS, *ONES, *TENS[2:], "hundred", *SCALES[1:])
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
SRC_ID = {t: i for i, t in enumerate(SRC_TOKENS)}
TGT_ID = {t: i for i, t in enumerate(TGT_TOKENS)}


def _group(g: int) -> list[str]:
    """Words for 1..999."""
    hundreds, rest = divmod(g, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if rest >= 20:
        words.append(TENS[rest // 10])
        if rest % 10:
            words.append(ONES[rest % 10])
    elif rest:
        words.append(ONES[rest])
    return words


def spell(digits: str) -> list[str]:
    """The English words for a string of decimal digits (at most 21, no leading zeros)."""
    if not digits or not digits.isdigit() or not digits.isascii():
        raise ValueError(f"expected a string of decimal digits, got {digits!r}")
    if len(digits) > MAX_DIGITS:
        raise ValueError(f"at most {MAX_DIGITS} digits (the scales end at quintillion), got {len(digits)}")
    n = int(digits)
    if n == 0:
        return [ONES[0]]
    words, scale = [], 0
    while n:
        n, g = divmod(n, 1000)
        if g:
            words = _group(g) + ([SCALES[scale]] if scale else []) + words
        scale += 1
    return words


def max_target_len(max_digits: int) -> int:
    """Padded target length: at most 4 words per 3-digit group ("seven hundred seventy seven")
    plus its scale word, plus ``<eos>``."""
    groups = -(-max_digits // 3)
    return 4 * groups + (groups - 1) + 1


def encode_one(digits: str, src_len: int, tgt_len: int) -> dict[str, np.ndarray]:
    """One example (see the module docstring) from a digit string of at most ``src_len`` digits."""
    if len(digits) > src_len:
        raise ValueError(f"{digits!r} has {len(digits)} digits; this model reads at most {src_len}")
    words = [TGT_ID[w] for w in spell(digits)]
    src, tgt_in, tgt_out = (np.zeros(n, np.int32) for n in (src_len, tgt_len, tgt_len))
    src[:len(digits)] = [SRC_ID[c] for c in digits]
    tgt_in[:len(words) + 1] = [BOS_ID, *words]
    tgt_out[:len(words) + 1] = [*words, EOS_ID]
    return {"src": src, "src_lengths": np.int32(len(digits)), "tgt_in": tgt_in, "tgt_out": tgt_out,
            "tgt_lengths": np.int32(len(words) + 1)}


def encode(numbers: list[str], src_len: int, tgt_len: int) -> dict[str, np.ndarray]:
    """A batch of :func:`encode_one` examples, stacked."""
    examples = [encode_one(n, src_len, tgt_len) for n in numbers]
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def decode_words(ids) -> str:
    """Target ids up to the first ``<eos>`` (padding and ``<bos>`` dropped) as a string."""
    words = []
    for i in np.asarray(ids).tolist():
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            words.append(TGT_TOKENS[i])
    return " ".join(words)


def sample_numbers(rng: np.random.Generator, n: int, digit_counts: np.ndarray, zero_prob: float) -> list[str]:
    """``n`` digit strings with the given digit counts (see the module docstring)."""
    D = int(np.max(digit_counts))
    digits = np.where(rng.random((n, D)) < zero_prob, 0, rng.integers(1, 10, (n, D)))
    first_zero_ok = digit_counts == 1  # "0" is a number; "07" is not
    digits[:, 0] = np.where(first_zero_ok, rng.integers(0, 10, n), rng.integers(1, 10, n))
    return ["".join(map(str, row[:d])) for row, d in zip(digits.tolist(), digit_counts.tolist(), strict=True)]


def check_config(config) -> None:
    """Validates ``config.data``; raises ConfigError naming the key."""
    d = config.data
    check_keys(config, default.get_config())
    for key in ("min_digits", "max_digits"):
        _need(_is_int(d[key]) and 1 <= d[key] <= MAX_DIGITS, f"data.{key}", d[key],
              f"expected an integer in [1, {MAX_DIGITS}] (the scales end at quintillion)")
    _need(d.min_digits <= d.max_digits, "data.min_digits", d.min_digits,
          f"must not exceed data.max_digits={d.max_digits}")
    _need(0.0 <= d.zero_prob < 1.0, "data.zero_prob", d.zero_prob, "expected a number in [0, 1)")
    _need(_is_int(d.val_size) and d.val_size >= 1, "data.val_size", d.val_size, "expected an integer >= 1")
    _need(_is_int(d.examples) and d.examples >= 0, "data.examples", d.examples, "expected an integer >= 0")
    check_inactive(config, default.get_config(), ["model.scan"], config.model.cell in LINEAR_KINDS,
                   f"model.cell one of {', '.join(LINEAR_KINDS)} (this config has model.cell={config.model.cell!r})")


def val_numbers(d) -> list[str]:
    """The fixed validation numbers, digit counts cycling through [min_digits, max_digits]."""
    rng = np.random.default_rng([d.val_seed, 1])
    span = d.max_digits - d.min_digits + 1
    counts = d.min_digits + np.arange(d.val_size) % span
    return sample_numbers(rng, d.val_size, counts, d.zero_prob)


@dataclasses.dataclass
class NumberData(Data):
    val_numbers: list[str]
    src_len: int
    tgt_len: int


def load(config) -> NumberData:
    check_config(config)
    d = config.data
    src_len, tgt_len = d.max_digits, max_target_len(d.max_digits)

    def example(_index, rng: np.random.Generator) -> dict[str, np.ndarray]:
        count = rng.integers(d.min_digits, d.max_digits + 1, size=1)
        return encode_one(sample_numbers(rng, 1, count, d.zero_prob)[0], src_len, tgt_len)

    numbers = grain.MapDataset.range(2**31 - 1).random_map(example, seed=shuffle_seed(config.seed))
    val = val_numbers(d)
    return NumberData(
        train=train_batches(numbers, config.train.batch_size, config.seed, shuffle=False),
        val=eval_batches(ArraySource(**encode(val, src_len, tgt_len)), config.eval.batch_size),
        metadata={"task": "spell out numbers", "src_tokens": list(SRC_TOKENS), "tgt_tokens": list(TGT_TOKENS)},
        val_numbers=val, src_len=src_len, tgt_len=tgt_len)
