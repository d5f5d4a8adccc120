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

Batches ``{src, src_lengths, tgt_in, tgt_out, tgt_lengths}`` are numpy arrays padded to fixed
shapes (``src``: ``max_digits``; targets: :func:`max_target_len`), so the model compiles once:

* ``tgt_in``  = ``<bos> w_1 .. w_M``  (teacher forcing inputs)
* ``tgt_out`` = ``w_1 .. w_M <eos>``  (what to predict); ``tgt_lengths = M + 1``

Training batches are a pure function of ``(seed, step)``. The validation set is fixed by
``val_seed`` (independent of the training seed) and stratified: the same number of examples for
every digit count, so that exact-match can be broken down by input length. Short numbers also
occur in training (there are only 100 two-digit strings); long ones almost never do.
"""

from __future__ import annotations

import dataclasses

import numpy as np

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


def encode(numbers: list[str], src_len: int, tgt_len: int) -> dict[str, np.ndarray]:
    """Pads a list of digit strings into a batch dict (see the module docstring)."""
    B = len(numbers)
    src = np.zeros((B, src_len), np.int32)
    tgt_in = np.zeros((B, tgt_len), np.int32)
    tgt_out = np.zeros((B, tgt_len), np.int32)
    src_lengths = np.zeros((B,), np.int32)
    tgt_lengths = np.zeros((B,), np.int32)
    for b, digits in enumerate(numbers):
        if len(digits) > src_len:
            raise ValueError(f"{digits!r} has {len(digits)} digits; this model reads at most {src_len}")
        words = [TGT_ID[w] for w in spell(digits)]
        src[b, :len(digits)] = [SRC_ID[c] for c in digits]
        src_lengths[b] = len(digits)
        tgt_in[b, :len(words) + 1] = [BOS_ID, *words]
        tgt_out[b, :len(words) + 1] = [*words, EOS_ID]
        tgt_lengths[b] = len(words) + 1
    return {"src": src, "src_lengths": src_lengths, "tgt_in": tgt_in, "tgt_out": tgt_out,
            "tgt_lengths": tgt_lengths}


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


@dataclasses.dataclass(frozen=True)
class NumberData:
    min_digits: int
    max_digits: int
    zero_prob: float
    batch_size: int
    seed: int
    val_size: int
    val_seed: int
    eval_batch_size: int = 1024  # the default validation set is one batch: one compile

    def __post_init__(self):
        if not 1 <= self.min_digits <= self.max_digits <= MAX_DIGITS:
            raise ValueError(f"need 1 <= min_digits <= max_digits <= {MAX_DIGITS}, got "
                             f"min_digits={self.min_digits}, max_digits={self.max_digits}")
        if not 0.0 <= self.zero_prob < 1.0:
            raise ValueError(f"zero_prob must lie in [0, 1), got {self.zero_prob}")

    @property
    def src_len(self) -> int:
        return self.max_digits

    @property
    def tgt_len(self) -> int:
        return max_target_len(self.max_digits)

    def train_numbers(self, step: int) -> list[str]:
        rng = np.random.default_rng([self.seed, step])
        counts = rng.integers(self.min_digits, self.max_digits + 1, self.batch_size)
        return sample_numbers(rng, self.batch_size, counts, self.zero_prob)

    def train_batch(self, step: int) -> dict[str, np.ndarray]:
        return encode(self.train_numbers(step), self.src_len, self.tgt_len)

    def val_numbers(self) -> list[str]:
        """The fixed validation numbers, digit counts cycling through [min_digits, max_digits]."""
        rng = np.random.default_rng([self.val_seed, 1])
        span = self.max_digits - self.min_digits + 1
        counts = self.min_digits + np.arange(self.val_size) % span
        return sample_numbers(rng, self.val_size, counts, self.zero_prob)

    def eval_batches(self):
        numbers = self.val_numbers()
        for lo in range(0, len(numbers), self.eval_batch_size):
            yield encode(numbers[lo:lo + self.eval_batch_size], self.src_len, self.tgt_len)
