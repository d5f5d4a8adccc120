// The LSTM time loop on the CPU as two XLA FFI handlers, for seqjax/native.py.
//
// XLA:CPU runs a recurrent loop as a while loop of small operations (a matmul, a few elementwise
// fusions, dynamic slices and updates), and pays a runtime dispatch for each of them at every step.
// Here one call runs the whole sequence: per step one sgemm ([x_t, h] @ [W_ih, W_hh]^T onto the
// biases) and one pass over the gates. The backward handler runs the reverse sweep the same way and
// returns every step's pre-activation gradient; the caller gets the weight and input gradients
// from a few big matmuls.
//
// Layouts: the per-step arrays are (T, B, F) (time-major) or (B, T, F) (batch-major); the rows of
// one step are then F or T*F floats apart, which is the sgemm's leading dimension, so no copy of a
// layout is made. Gate order i, f, g, o (torch's). ``lengths`` masks as seqjax.recurrent.unroll
// does: on a padded step the carry is held, the output is zero and no gradient flows into it.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "cblas.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// exp for float32 on [-87, 87]: Cody-Waite range reduction x = n ln2 + r and a degree-6 polynomial
// in r (the Cephes expf coefficients), scaled by 2^n through the exponent bits. Written out so that
// the compiler vectorises the gate loops without a vector math library.
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;  // comparisons, not fmin/fmax: a NaN passes through (and vectorises)
  x = x > 87.0f ? 87.0f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);
}

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

// tanh: (1 - e^{-2|x|}) / (1 + e^{-2|x|}) with the sign put back; near zero, where 1 - e^{-2|x|}
// cancels, its odd Taylor series to x^7 (error below 1e-9 for |x| < 1/16).
inline float fast_tanh(float x) {
  const float a = std::fabs(x);
  const float e = fast_exp(-2.0f * a);
  const float big = (1.0f - e) / (1.0f + e);
  const float x2 = x * x;
  const float small = a * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315))));
  const float t = a < 0.0625f ? small : big;
  return std::copysign(t, x);
}

struct Layout {
  int64_t T, B;
  bool batch_major;
  // offset of row b of step t in an array of F features per (t, b), and the distance between the
  // rows of one step
  int64_t row(int64_t t, int64_t b, int64_t F) const {
    return batch_major ? (b * T + t) * F : (t * B + b) * F;
  }
  int64_t ld(int64_t F) const { return batch_major ? T * F : F; }
};

// Rows of a batch are independent in the recurrence, so the batch is split into parts that each
// run the whole sequence with no synchronisation between steps. The calling thread and tasks on
// XLA's intra-op pool claim parts until none is left, so a part never waits for a pool thread that
// XLA keeps busy with another operation: at worst the caller runs them all. OpenBLAS runs
// single-threaded inside each part.
template <typename F>
void over_row_parts(ffi::ThreadPool& pool, int64_t B, F&& run_rows) {
  constexpr int64_t kMinRows = 8;  // below this a part's sgemm is too thin to pay for a thread
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  const int64_t parts = std::max<int64_t>(1, std::min(threads, B / kMinRows));
  if (parts == 1) {
    run_rows(0, B);
    return;
  }
  const int64_t size = (B + parts - 1) / parts;
  struct Shared {
    std::atomic<int64_t> next{0};
    std::mutex mu;
    std::condition_variable cv;
    int64_t done = 0;
    std::function<void(int64_t)> run;  // refers to the caller's frame: called only while it waits
  };
  auto shared = std::make_shared<Shared>();
  shared->run = [&](int64_t p) { run_rows(p * size, std::min(B, (p + 1) * size)); };
  auto work = [shared, parts] {  // a task that starts after the last part was claimed does nothing
    for (int64_t p; (p = shared->next.fetch_add(1)) < parts;) {
      shared->run(p);
      std::lock_guard<std::mutex> lock(shared->mu);
      if (++shared->done == parts) shared->cv.notify_all();
    }
  };
  for (int64_t i = 1; i < parts; ++i) pool.Schedule(decltype(work)(work));  // a copy per task
  work();
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->done == parts; });
}

ffi::Error check_shape(ffi::Span<const int64_t> d, int64_t a, int64_t b, int64_t c, const char* what) {
  if (d.size() != 3 || d[0] != a || d[1] != b || d[2] != c)
    return ffi::Error::InvalidArgument(std::string("seqjax lstm: unexpected shape of ") + what);
  return ffi::Error::Success();
}

ffi::Error LstmForwardImpl(ffi::Buffer<ffi::F32> xs, ffi::Buffer<ffi::F32> w_cat, ffi::Buffer<ffi::F32> bias,
                           ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::S32> lengths,
                           ffi::ResultBuffer<ffi::F32> ys, ffi::ResultBuffer<ffi::F32> h_out,
                           ffi::ResultBuffer<ffi::F32> c_out, ffi::ResultBuffer<ffi::F32> acts,
                           ffi::ResultBuffer<ffi::F32> cs, int32_t reverse, int32_t batch_major,
                           ffi::ThreadPool pool) {
  const auto xd = xs.dimensions();
  const auto wd = w_cat.dimensions();
  const auto hd = h0.dimensions();
  if (xd.size() != 3 || hd.size() != 2 || wd.size() != 2 || wd[0] != 4 * hd[1] || wd[1] != xd[2] + hd[1])
    return ffi::Error::InvalidArgument("seqjax lstm: xs must be (T, B, I) or (B, T, I), w_cat (4H, I+H), h0 (B, H)");
  const int64_t I = xd[2], H = hd[1], G = 4 * H, K = I + H;
  const Layout L{batch_major ? xd[1] : xd[0], batch_major ? xd[0] : xd[1], batch_major != 0};
  const int64_t T = L.T, B = L.B;
  if (auto e = check_shape(ys->dimensions(), xd[0], xd[1], H, "ys"); e.failure()) return e;
  if (bias.element_count() != G) return ffi::Error::InvalidArgument("seqjax lstm: bias must be (4H,)");
  const float* __restrict xp = xs.typed_data();
  const float* __restrict bp = bias.typed_data();
  const float* __restrict w = w_cat.typed_data();
  const int32_t* len = lengths.typed_data();
  float* __restrict y = ys->typed_data();
  float* __restrict h = h_out->typed_data();
  float* __restrict c = c_out->typed_data();
  float* __restrict ap = acts->typed_data();
  float* __restrict cp = cs->typed_data();
  std::memcpy(h, h0.typed_data(), sizeof(float) * B * H);
  std::memcpy(c, c0.typed_data(), sizeof(float) * B * H);
  over_row_parts(pool, B, [&](int64_t r0, int64_t r1) {
    const int64_t R = r1 - r0;
    std::vector<float> pre_buf(R * G), xh_buf(R * K);
    float* __restrict pre = pre_buf.data();
    float* __restrict xh = xh_buf.data();
    for (int64_t i = 0; i < T; ++i) {
      const int64_t t = reverse ? T - 1 - i : i;
      for (int64_t b = r0; b < r1; ++b) {  // rows [x_t, h] and the biases the sgemm adds onto
        std::memcpy(xh + (b - r0) * K, xp + L.row(t, b, I), sizeof(float) * I);
        std::memcpy(xh + (b - r0) * K + I, h + b * H, sizeof(float) * H);
        std::memcpy(pre + (b - r0) * G, bp, sizeof(float) * G);
      }
      scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, G, K, 1.0f, xh, K, w, K, 1.0f, pre, G);
      for (int64_t b = r0; b < r1; ++b) {
        float* __restrict hb = h + b * H;
        float* __restrict cb = c + b * H;
        float* __restrict yb = y + L.row(t, b, H);
        float* __restrict csb = cp + L.row(t, b, H);
        float* __restrict ab = ap + L.row(t, b, G);
        if (t >= len[b]) {  // padded: carry held, output zero
          std::fill(yb, yb + H, 0.0f);
          std::memcpy(csb, cb, sizeof(float) * H);
          std::fill(ab, ab + G, 0.0f);
          continue;
        }
        const float* __restrict pb = pre + (b - r0) * G;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const float ig = fast_sigmoid(pb[j]);
          const float fg = fast_sigmoid(pb[H + j]);
          const float gg = fast_tanh(pb[2 * H + j]);
          const float og = fast_sigmoid(pb[3 * H + j]);
          const float cn = fg * cb[j] + ig * gg;
          const float hn = og * fast_tanh(cn);
          ab[j] = ig;
          ab[H + j] = fg;
          ab[2 * H + j] = gg;
          ab[3 * H + j] = og;
          csb[j] = cn;
          cb[j] = cn;
          yb[j] = hn;
          hb[j] = hn;
        }
      }
    }
  });
  return ffi::Error::Success();
}

ffi::Error LstmBackwardImpl(ffi::Buffer<ffi::F32> w_hh, ffi::Buffer<ffi::F32> acts, ffi::Buffer<ffi::F32> cs,
                            ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> dys, ffi::Buffer<ffi::F32> dh_final,
                            ffi::Buffer<ffi::F32> dc_final, ffi::Buffer<ffi::S32> lengths,
                            ffi::ResultBuffer<ffi::F32> d_pre, ffi::ResultBuffer<ffi::F32> dh_out,
                            ffi::ResultBuffer<ffi::F32> dc_out, int32_t reverse, int32_t batch_major,
                            ffi::ThreadPool pool) {
  const auto ad = acts.dimensions();
  const auto wd = w_hh.dimensions();
  if (ad.size() != 3 || wd.size() != 2 || wd[0] != 4 * wd[1] || ad[2] != wd[0])
    return ffi::Error::InvalidArgument("seqjax lstm: acts must be (T, B, 4H) or (B, T, 4H), w_hh (4H, H)");
  const int64_t H = wd[1], G = 4 * H;
  const Layout L{batch_major ? ad[1] : ad[0], batch_major ? ad[0] : ad[1], batch_major != 0};
  const int64_t T = L.T, B = L.B;
  if (auto e = check_shape(dys.dimensions(), ad[0], ad[1], H, "dys"); e.failure()) return e;
  const float* __restrict w = w_hh.typed_data();
  const float* __restrict ap = acts.typed_data();
  const float* __restrict cp = cs.typed_data();
  const float* __restrict c0p = c0.typed_data();
  const float* __restrict dyp = dys.typed_data();
  const int32_t* len = lengths.typed_data();
  float* __restrict dg = d_pre->typed_data();
  float* __restrict dh = dh_out->typed_data();
  float* __restrict dc = dc_out->typed_data();
  std::memcpy(dh, dh_final.typed_data(), sizeof(float) * B * H);
  std::memcpy(dc, dc_final.typed_data(), sizeof(float) * B * H);
  over_row_parts(pool, B, [&](int64_t r0, int64_t r1) {
    const int64_t R = r1 - r0;
    std::vector<float> next_buf(R * H);
    float* __restrict next = next_buf.data();
    for (int64_t i = 0; i < T; ++i) {  // against the forward's order
      const int64_t t = reverse ? i : T - 1 - i;
      const int64_t tp = reverse ? t + 1 : t - 1;  // the step before, in the forward's order
      for (int64_t b = r0; b < r1; ++b) {
        float* __restrict gb = dg + L.row(t, b, G);
        if (t >= len[b]) {
          std::fill(gb, gb + G, 0.0f);
          continue;
        }
        const float* __restrict ab = ap + L.row(t, b, G);
        const float* __restrict cb = cp + L.row(t, b, H);
        const float* __restrict cprev = (tp < 0 || tp >= T) ? c0p + b * H : cp + L.row(tp, b, H);
        const float* __restrict dyb = dyp + L.row(t, b, H);
        float* __restrict dhb = dh + b * H;
        float* __restrict dcb = dc + b * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const float ig = ab[j], fg = ab[H + j], gg = ab[2 * H + j], og = ab[3 * H + j];
          const float tc = fast_tanh(cb[j]);
          const float dht = dhb[j] + dyb[j];
          const float dct = dcb[j] + dht * og * (1.0f - tc * tc);
          gb[j] = dct * gg * ig * (1.0f - ig);
          gb[H + j] = dct * cprev[j] * fg * (1.0f - fg);
          gb[2 * H + j] = dct * ig * (1.0f - gg * gg);
          gb[3 * H + j] = dht * tc * og * (1.0f - og);
          dcb[j] = dct * fg;
        }
      }
      // the old h's gradient: d_pre_t @ W_hh for the real rows; a padded row keeps the one it had
      scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, H, G, 1.0f, dg + L.row(t, r0, G), L.ld(G), w,
                        H, 0.0f, next, H);
      for (int64_t b = r0; b < r1; ++b)
        if (t < len[b]) std::memcpy(dh + b * H, next + (b - r0) * H, sizeof(float) * H);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxLstmForward, LstmForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // xs, every step
                                  .Arg<ffi::Buffer<ffi::F32>>()  // [W_ih, W_hh] (4H, I+H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b_ih + b_hh (4H,)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h0 (B, H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0 (B, H)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // lengths (B,)
                                  .Ret<ffi::Buffer<ffi::F32>>()  // ys
                                  .Ret<ffi::Buffer<ffi::F32>>()  // final h
                                  .Ret<ffi::Buffer<ffi::F32>>()  // final c
                                  .Ret<ffi::Buffer<ffi::F32>>()  // activated gates, every step
                                  .Ret<ffi::Buffer<ffi::F32>>()  // c after every step
                                  .Attr<int32_t>("reverse")
                                  .Attr<int32_t>("batch_major")
                                  .Ctx<ffi::ThreadPool>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqjaxLstmBackward, LstmBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // w_hh
                                  .Arg<ffi::Buffer<ffi::F32>>()  // acts
                                  .Arg<ffi::Buffer<ffi::F32>>()  // cs
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // dys
                                  .Arg<ffi::Buffer<ffi::F32>>()  // gradient of the final h
                                  .Arg<ffi::Buffer<ffi::F32>>()  // gradient of the final c
                                  .Arg<ffi::Buffer<ffi::S32>>()  // lengths
                                  .Ret<ffi::Buffer<ffi::F32>>()  // pre-activation gradients, every step
                                  .Ret<ffi::Buffer<ffi::F32>>()  // gradient of h0
                                  .Ret<ffi::Buffer<ffi::F32>>()  // gradient of c0
                                  .Attr<int32_t>("reverse")
                                  .Attr<int32_t>("batch_major")
                                  .Ctx<ffi::ThreadPool>());

// OpenBLAS runs single-threaded: the parallelism is over_row_parts' (set when the library loads).
namespace {
struct SingleThreadedBlas {
  SingleThreadedBlas() { scipy_openblas_set_num_threads(1); }
} single_threaded_blas;
}  // namespace
