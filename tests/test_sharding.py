"""unroll and Stack inside ``shard_map`` with the batch sharded, on simulated CPU devices.

The check runs in a fresh process, because the number of host devices is fixed when JAX starts
(``XLA_FLAGS=--xla_force_host_platform_device_count=2``).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    import seqjax

    assert jax.device_count() == 2, jax.devices()
    mesh = jax.make_mesh((2,), ("b",))
    put = lambda tree, spec: jax.tree_util.tree_map(lambda a: jax.device_put(a, NamedSharding(mesh, spec)), tree)
    B, T, I, H = 4, 6, 3, 5
    xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
    lengths = jnp.array([6, 2, 5, 1])
    out = {}

    def sharded(f, n_batch_args):
        specs = (P(),) + (P("b"),) * n_batch_args
        return jax.jit(jax.shard_map(f, mesh=mesh, in_specs=specs, out_specs=(P(), P("b"))))

    def diff(a, b):
        return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                   for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))

    for name in ["lstm", "gru", "rnn_tanh"]:
        cell = seqjax.make_cell(name)
        p = cell.init(jax.random.PRNGKey(0), I, H)
        c0 = jax.tree_util.tree_map(lambda a: a + 0.3, cell.initial_carry((B,), H))

        def loss(p, x, c, n):
            final, ys = seqjax.unroll(cell, p, x, c, lengths=n)
            return jnp.sum(ys ** 2) + sum(jnp.sum(a) for a in jax.tree_util.tree_leaves(final)), ys

        def per_device(p, x, c, n):  # grads of replicated params come back summed over the batch
            (l, ys), g = jax.value_and_grad(loss, has_aux=True)(p, x, c, n)
            return g, ys

        def per_device_zero_carry(p, x, n):
            g = jax.grad(lambda p: jnp.sum(seqjax.unroll(cell, p, x, lengths=n)[1] ** 2))(p)
            return g, seqjax.unroll(cell, p, x, lengths=n)[1]

        g_ref, ys_ref = jax.value_and_grad(loss, has_aux=True)(p, xs, c0, lengths)[1], loss(p, xs, c0, lengths)[1]
        g, ys = sharded(per_device, 3)(put(p, P()), put(xs, P("b")), put(c0, P("b")), put(lengths, P("b")))
        out[name] = diff((g, ys), (g_ref, ys_ref))
        g2, ys2 = sharded(per_device_zero_carry, 2)(put(p, P()), put(xs, P("b")), put(lengths, P("b")))
        g2_ref = jax.grad(lambda p: jnp.sum(seqjax.unroll(cell, p, xs, lengths=lengths)[1] ** 2))(p)
        out[name + "_zero_carry"] = diff((g2, ys2), (g2_ref, seqjax.unroll(cell, p, xs, lengths=lengths)[1]))

    st = seqjax.Stack("lstm", num_layers=2, bidirectional=True)
    sp = st.init(jax.random.PRNGKey(2), I, H)
    st_loss = lambda p, x, n: jnp.sum(st(p, x, lengths=n)[1] ** 2)

    def stack_per_device(p, x, n):
        return jax.grad(st_loss)(p, x, n), st(p, x, lengths=n)[1]

    g, ys = sharded(stack_per_device, 2)(put(sp, P()), put(xs, P("b")), put(lengths, P("b")))
    out["stack"] = diff((g, ys), (jax.grad(st_loss)(sp, xs, lengths), st(sp, xs, lengths=lengths)[1]))
    print(json.dumps(out))
""")


def test_unroll_and_stack_under_shard_map_with_the_batch_sharded():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    run = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    diffs = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(diffs) == {"lstm", "lstm_zero_carry", "gru", "gru_zero_carry", "rnn_tanh", "rnn_tanh_zero_carry",
                          "stack"}
    for key, d in diffs.items():
        assert d < 1e-4, (key, d)
