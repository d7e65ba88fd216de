// Step loops of the fused CPU recurrences (elman/models/fused.py), compiled.
//
// Each function runs its time loop once per block of batch rows, the blocks in parallel
// on torch's intra-op threads. Batch rows never interact in a recurrence, so a block can
// run all its steps alone; its per-step matrix products then run on one thread each,
// where they are far more efficient than one small product split over every thread.
// The element-wise work of a backward step is one hand-written pass over the block's
// rows, which are still in cache from the step's matrix product.
//
// The Python module allocates every buffer and computes what needs no step loop (the
// input projections, except an Elman layer's with few inputs, which its loop folds in);
// these functions fill buffers in place. The backward loops also add up the recurrent
// weight gradient per block when it is small enough to stay in cache (fused.py decides).
// The equations are documented in fused.py.
//
// Tensors are time-major: [L, B, C]. Rows of a batch block are sliced along dim 1. The
// recurrent weights may have any strides; every tensor read or written row by row here
// must have unit stride along C (checked).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

using at::Tensor;

// From MKL when torch links it (weak: absent otherwise; MKL_Set_Num_Threads_Local tells
// that it is MKL, since another BLAS linked into torch may also define sgemm_). The per-thread thread count, and
// the packed GEMM: a matrix reused by many products is packed once into MKL's internal
// layout, which every later product then reads without packing it again. Enumerations are
// passed as the ints MKL's C interface defines (LP64: MKL_INT is int).
extern "C" {
int MKL_Set_Num_Threads_Local(int) __attribute__((weak));
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc)
    __attribute__((weak));
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc) __attribute__((weak));
}

namespace {

// One BLAS thread for the calling thread while alive. Torch turns MKL's dynamic thread
// adjustment off, so without this every block's product would start its own MKL threads.
struct OneBlasThread {
  int saved = 0;
  OneBlasThread() {
    if (MKL_Set_Num_Threads_Local) saved = MKL_Set_Num_Threads_Local(1);
  }
  ~OneBlasThread() {
    if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(saved);
  }
};

bool mkl_linked() { return MKL_Set_Num_Threads_Local != nullptr; }

// MKL's CBLAS constants.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;

// ELMAN_NO_PACKED_GEMM=1 turns the packed products off (read at every call, so a
// benchmark can compare both in one process).
bool packed_gemm_available() {
  const char* off = std::getenv("ELMAN_NO_PACKED_GEMM");
  if (off != nullptr && off[0] != '\0' && std::string(off) != "0") return false;
  return mkl_linked() && cblas_sgemm_pack_get_size && cblas_sgemm_pack && cblas_sgemm_compute;
}

// Whether a [rows, cols] matrix with these strides is a valid BLAS operand stored row by
// row (unit column stride, row stride at least the row length; torch leaves a single row
// or an expanded tensor with smaller row strides).
bool blas_rows(int64_t cols, int64_t row_stride, int64_t col_stride) {
  return col_stride == 1 && row_stride >= std::max<int64_t>(1, cols);
}

// out = a @ b for the [rows, K] step views a and out of one block, b [K, N] fixed for the
// whole time loop. In float with MKL, b is packed once per block and every step's product
// reads the packed copy; otherwise each step calls at::mm_out. out is overwritten (the
// row passes add what the step adds to the product).
class StepProduct {
 public:
  StepProduct(const Tensor& b, int64_t rows) : b_(b) {
    if (b.scalar_type() != at::kFloat || rows == 0 || !packed_gemm_available()) return;
    const bool row_major = blas_rows(b.size(1), b.stride(0), b.stride(1));
    const bool col_major = !row_major && blas_rows(b.size(0), b.stride(1), b.stride(0));
    if (!row_major && !col_major) {  // e.g. expanded; contiguous() keeps a [1, N] as it is
      b_ = at::empty({b.size(0), b.size(1)}, b.options()).copy_(b);
    }
    const bool trans = col_major;  // b stored column by column: pack its transpose
    const int m = static_cast<int>(rows), n = static_cast<int>(b_.size(1));
    const int k = static_cast<int>(b_.size(0));
    const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, m, n, k);
    packed_ = at::empty({static_cast<int64_t>(bytes / sizeof(float)) + 16}, b_.options());
    cblas_sgemm_pack(kRowMajor, kBMatrix, trans ? kTrans : kNoTrans, m, n, k, 1.0f,
                     b_.data_ptr<float>(), static_cast<int>(trans ? b_.stride(1) : b_.stride(0)),
                     packed_.data_ptr<float>());
  }

  void run(const Tensor& a, Tensor& out) const {
    const bool valid = blas_rows(a.size(1), a.stride(0), a.stride(1)) &&
                       blas_rows(out.size(1), out.stride(0), out.stride(1));
    if (!packed_.defined() || !valid) {
      at::mm_out(out, a, b_);
      return;
    }
    cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, static_cast<int>(a.size(0)),
                        static_cast<int>(b_.size(1)), static_cast<int>(b_.size(0)),
                        a.data_ptr<float>(), static_cast<int>(a.stride(0)),
                        packed_.data_ptr<float>(), static_cast<int>(b_.size(1)), 0.0f,
                        out.data_ptr<float>(), static_cast<int>(out.stride(0)));
  }

 private:
  Tensor b_;
  Tensor packed_;  // MKL's packed copy of b_, when used
};

// Rows per block: one block per thread, none under min_rows rows (so a small batch runs
// as one block).
int64_t block_rows(int64_t batch, int64_t min_rows) {
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t rows = std::max((batch + threads - 1) / threads, std::min(batch, min_rows));
  return std::max<int64_t>(1, rows);  // an empty batch is one empty block's worth of rows
}

int64_t num_blocks(int64_t batch, int64_t min_rows) {
  const int64_t rows = block_rows(batch, min_rows);
  return (batch + rows - 1) / rows;
}

// Recurrent weight gradients accumulated inside the backward loops: each block adds
// d_t.T @ h_{t-1} to its own [G, H] partial sum at every step, while both are still in
// cache, instead of one pass over the whole sequence afterwards. Float and double only
// (a bfloat16 or half product would need its own accumulator type).
bool weight_grad_in_loop(const Tensor& like) {
  return like.scalar_type() == at::kFloat || like.scalar_type() == at::kDouble;
}

// partial [G, H] += d.T @ h for d [rows, G], h [rows, H] (unit strides along G and H).
void add_weight_grad(Tensor& partial, const Tensor& d, const Tensor& h) {
  if (partial.scalar_type() == at::kFloat && sgemm_ && mkl_linked() &&
      blas_rows(h.size(1), h.stride(0), h.stride(1)) &&
      blas_rows(d.size(1), d.stride(0), d.stride(1))) {
    // Column-major view: partial is [H, G] = h.T [H, rows] @ d [rows, G].
    const int m = static_cast<int>(h.size(1)), n = static_cast<int>(d.size(1));
    const int k = static_cast<int>(d.size(0));
    const int lda = static_cast<int>(h.stride(0)), ldb = static_cast<int>(d.stride(0));
    const float one = 1.0f;
    if (k == 0) return;
    sgemm_("N", "T", &m, &n, &k, &one, h.data_ptr<float>(), &lda, d.data_ptr<float>(), &ldb,
           &one, partial.data_ptr<float>(), &m);
    return;
  }
  partial.addmm_(d.t(), h);
}

// Per-block weight-gradient partial sums [blocks, G, H] (zeros), or an empty tensor when
// not wanted or not computed in the loop for this dtype.
Tensor weight_grad_partials(bool wanted, int64_t batch, int64_t min_rows, int64_t gates,
                            int64_t hid, const Tensor& like) {
  if (!wanted || !weight_grad_in_loop(like)) return at::empty({0}, like.options());
  return at::zeros({num_blocks(batch, min_rows), gates, hid}, like.options());
}

// Runs body(lo, hi, block) on the blocks of batch rows (block k holds rows
// k * rows .. (k + 1) * rows), the blocks in parallel.
template <typename F>
void over_rows(int64_t batch, int64_t min_rows, const F& body) {
  const int64_t rows = block_rows(batch, min_rows);
  at::parallel_for(0, num_blocks(batch, min_rows), 1, [&](int64_t first, int64_t last) {
    at::NoGradGuard no_grad;  // pool threads start with grad mode on
    OneBlasThread one_blas_thread;
    for (int64_t k = first; k < last; ++k) {
      body(k * rows, std::min(batch, (k + 1) * rows), k);
    }
  });
}

// Per-block partial sums over rows, summed later in block order (deterministic).
Tensor block_sums(int64_t batch, int64_t min_rows, int64_t width, const Tensor& like) {
  return at::zeros({num_blocks(batch, min_rows), width},
                   like.options().dtype(at::toOpMathType(like.scalar_type())));
}

// Per-step [hi - lo, C] views of rows lo..hi of a time-major tensor.
std::vector<Tensor> steps_of(const Tensor& x, int64_t lo, int64_t hi) {
  return x.slice(1, lo, hi).unbind(0);
}

void check_unit_stride(std::initializer_list<const Tensor*> tensors, const char* fn) {
  for (const Tensor* t : tensors) {
    TORCH_CHECK(t->numel() == 0 || t->stride(-1) == 1, fn,
                ": expected unit stride along the last dimension");
  }
}

// Row r of a [rows, C] step view.
template <typename T>
inline T* row(const Tensor& step, int64_t r) {
  return step.data_ptr<T>() + r * step.stride(0);
}

// ----------------------------------------------------- activations of the forward loops
// sigmoid and tanh in the maths type A. In float they use an exp the compiler can
// vectorise: x = n ln2 + r with |r| <= ln2 / 2 (n rounded by adding and subtracting
// 1.5 * 2^23), e^r as 1 + r + r^2 p(r) with the classic single-precision minimax
// coefficients, times 2^n built from the exponent bits. Relative error about 2e-7, against
// 6e-8 for a float's own rounding.
//
// The row functions below index a row's gate chunks as offsets of hid from one pointer and
// tell the compiler that iterations never overlap (ivdep): it cannot prove the chunks
// apart, and with that many streams it will not check them at run time, so it would
// otherwise leave the loop scalar. Each row function is called from one place per loop:
// two calls under a branch (a folded projection or not) left the LSTM's forward row
// scalar, 40% slower. After editing, check with g++ -fopt-info-vec-optimized.

template <typename A>
inline A sigmoid_of(A x) {
  return A(1) / (A(1) + std::exp(-x));
}

template <typename A>
inline A tanh_of(A x) {
  return std::tanh(x);
}

inline float exp_of(float x) {
  constexpr float round = 12582912.0f;  // 1.5 * 2^23
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = (x * 1.44269504088896341f + round) - round;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = 1.0f + r + r * r * p;
  return e * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

template <>
inline float sigmoid_of<float>(float x) {
  return 1.0f / (1.0f + exp_of(-x));
}

template <>
inline float tanh_of<float>(float x) {
  return 2.0f / (1.0f + exp_of(-2.0f * x)) - 1.0f;
}

// LSTM forward maths of one row. a: h_{t-1} @ W_hh.T on entry, the activations i, f, g, o
// on return; gi = x_t @ W_ih.T, b the bias (gi + b + a: the pre-activations); c = c_{t-1}.
template <typename T, typename A>
void lstm_forward_row(int64_t hid, T* a, const T* gi, const T* b, const T* __restrict__ c,
                      T* __restrict__ c_next, T* __restrict__ tc, T* __restrict__ h_next) {
#pragma GCC ivdep  // the chunks of a row never overlap
  for (int64_t j = 0; j < hid; ++j) {
    const int64_t jf = hid + j, jg = 2 * hid + j, jo = 3 * hid + j;
    const auto pre = [&](int64_t k) {
      return static_cast<A>(a[k]) + static_cast<A>(gi[k]) + static_cast<A>(b[k]);
    };
    const A i = sigmoid_of<A>(pre(j));
    const A f = sigmoid_of<A>(pre(jf));
    const A g = tanh_of<A>(pre(jg));
    const A o = sigmoid_of<A>(pre(jo));
    a[j] = i;
    a[jf] = f;
    a[jg] = g;
    a[jo] = o;
    const T cn = static_cast<T>(f * static_cast<A>(c[j]) + i * g);
    c_next[j] = cn;
    const A t = tanh_of<A>(static_cast<A>(cn));
    tc[j] = t;
    h_next[j] = o * t;
  }
}

// GRU forward maths of one row. a: h_{t-1} @ W_hh.T on entry, [r, z, gh_n] on return;
// b = [b_ir + b_hr, b_iz + b_hz, b_hn] (so gh_n = a_n + b_hn); gi = x @ W_ih.T;
// h = h_{t-1}.
template <typename T, typename A>
void gru_forward_row(int64_t hid, T* a, const T* gi, const T* __restrict__ b,
                     const T* __restrict__ b_in, const T* __restrict__ h, T* __restrict__ n,
                     T* __restrict__ h_next) {
#pragma GCC ivdep  // the chunks of a row never overlap
  for (int64_t j = 0; j < hid; ++j) {
    const int64_t jz = hid + j, jn = 2 * hid + j;
    const A r = sigmoid_of<A>(static_cast<A>(a[j]) + static_cast<A>(b[j]) + static_cast<A>(gi[j]));
    const A z =
        sigmoid_of<A>(static_cast<A>(a[jz]) + static_cast<A>(b[jz]) + static_cast<A>(gi[jz]));
    const A ghn = static_cast<A>(a[jn]) + static_cast<A>(b[jn]);
    const A nv = tanh_of<A>(static_cast<A>(gi[jn]) + static_cast<A>(b_in[j]) + r * ghn);
    a[j] = r;
    a[jz] = z;
    a[jn] = ghn;
    n[j] = nv;
    h_next[j] = nv + z * (static_cast<A>(h[j]) - nv);
  }
}

// ------------------------------------------------- element-wise backward maths, one row
// T is the storage type, A the type the maths runs in (float for bfloat16 and half).

// h = tanh(h + p): h holds h_{t-1} @ W.T on entry, h_t on return.
template <typename T, typename A>
void elman_forward_row(int64_t hid, T* __restrict__ h, const T* __restrict__ p) {
  for (int64_t j = 0; j < hid; ++j) {
    h[j] = tanh_of<A>(static_cast<A>(h[j]) + static_cast<A>(p[j]));
  }
}

// The same with the input projection folded in: h = tanh(h + b + x @ W_ih.T) for the n_in
// inputs x of the row, w_in = W_ih.T [n_in, H]; v is scratch space [H]. One loop per input
// (an inner loop over the inputs would keep the compiler from vectorising).
template <typename T, typename A>
void elman_forward_row(int64_t hid, T* __restrict__ h, const T* __restrict__ b,
                       const T* __restrict__ x, int64_t n_in, const T* __restrict__ w_in,
                       A* __restrict__ v) {
  for (int64_t j = 0; j < hid; ++j) v[j] = static_cast<A>(h[j]) + static_cast<A>(b[j]);
  for (int64_t i = 0; i < n_in; ++i) {
    const A xi = x[i];
    const T* __restrict__ w = w_in + i * hid;
    for (int64_t j = 0; j < hid; ++j) v[j] += xi * static_cast<A>(w[j]);
  }
  for (int64_t j = 0; j < hid; ++j) h[j] = tanh_of<A>(v[j]);
}

// out [width] = x @ W_ih.T for one row of n_in inputs x: the input gates of a projection
// folded into the loop, w_in = W_ih.T [n_in, width], summed in v [width] (the maths type)
// and stored as T, as F.linear would store them. One loop per input, as above.
template <typename T, typename A>
const T* project_row(int64_t width, const T* __restrict__ x, int64_t n_in,
                     const T* __restrict__ w_in, A* __restrict__ v, T* __restrict__ out) {
  for (int64_t j = 0; j < width; ++j) v[j] = A(0);
  for (int64_t i = 0; i < n_in; ++i) {
    const A xi = x[i];
    const T* __restrict__ w = w_in + i * width;
    for (int64_t j = 0; j < width; ++j) v[j] += xi * static_cast<A>(w[j]);
  }
  for (int64_t j = 0; j < width; ++j) out[j] = static_cast<T>(v[j]);
  return out;
}

// sums [n_in, width] += x.T @ d for one row: the gradient of W_ih.T of a folded input
// projection, d the gradient at its output.
template <typename T, typename A>
void add_input_grads(int64_t width, const T* __restrict__ d, const T* __restrict__ x,
                     int64_t n_in, A* __restrict__ sums) {
  for (int64_t i = 0; i < n_in; ++i) {
    const A xi = x[i];
    A* __restrict__ s = sums + i * width;
    for (int64_t j = 0; j < width; ++j) s[j] += xi * static_cast<A>(d[j]);
  }
}

// sums [width] += d
template <typename T, typename A>
void add_row(int64_t width, const T* __restrict__ d, A* __restrict__ sums) {
  for (int64_t j = 0; j < width; ++j) sums[j] += static_cast<A>(d[j]);
}

// d = (dh + g) * (1 - h^2)
template <typename T, typename A>
void elman_backward_row(int64_t hid, const T* __restrict__ dh, const T* __restrict__ g,
                        const T* __restrict__ h, T* __restrict__ d) {
  for (int64_t j = 0; j < hid; ++j) {
    const A hv = h[j];
    d[j] = (static_cast<A>(dh[j]) + static_cast<A>(g[j])) * (A(1) - hv * hv);
  }
}

// x += g + y * z
template <typename T, typename A>
void add_product(int64_t hid, T* __restrict__ x, const T* __restrict__ g,
                 const T* __restrict__ y, const T* __restrict__ z) {
  for (int64_t j = 0; j < hid; ++j) {
    x[j] = static_cast<A>(x[j]) + static_cast<A>(g[j]) + static_cast<A>(y[j]) * static_cast<A>(z[j]);
  }
}

// GRU: gradients at gh (dgh) and gi (dgi) from dh, the total gradient at h_t.
// a = [r, z, gh_n], n the candidate, h = h_{t-1}; sums [4H] accumulates dgh and dgi_n
// (the bias gradients).
template <typename T, typename A>
void gru_backward_row(int64_t hid, const T* __restrict__ dh, const T* a,
                      const T* __restrict__ n, const T* __restrict__ h, T* dgh, T* dgi,
                      A* sums) {
#pragma GCC ivdep  // the chunks of a row never overlap
  for (int64_t j = 0; j < hid; ++j) {
    const int64_t jz = hid + j, jn = 2 * hid + j;
    const A d = dh[j], rv = a[j], zv = a[jz], ghn = a[jn], nv = n[j];
    const A dn = d * (A(1) - nv * nv) * (A(1) - zv);  // at n's pre-activation
    const A d_r = dn * ghn * rv * (A(1) - rv);
    const A d_z = d * (static_cast<A>(h[j]) - nv) * zv * (A(1) - zv);
    dgh[j] = d_r;
    dgh[jz] = d_z;
    dgh[jn] = dn * rv;
    dgi[j] = d_r;
    dgi[jz] = d_z;
    dgi[jn] = dn;
    sums[j] += d_r;
    sums[jz] += d_z;
    sums[jn] += dn * rv;
    sums[3 * hid + j] += dn;
  }
}

// LSTM: gate pre-activation gradients from dh + gh (the total gradient at h_t: through
// h_{t+1} and from above); carry holds dc_{t+1} f_{t+1} on entry and dc_t f_t on return.
// a = [i, f, g, o], tc = tanh(c_t), c = c_{t-1}; sums [4H] accumulates out (the bias
// gradient).
template <typename T, typename A>
void lstm_backward_row(int64_t hid, const T* __restrict__ dh, const T* __restrict__ gh,
                       const T* a, const T* __restrict__ tc, const T* __restrict__ c,
                       A* __restrict__ carry, T* out, A* sums) {
#pragma GCC ivdep  // the chunks of a row never overlap
  for (int64_t j = 0; j < hid; ++j) {
    const int64_t jf = hid + j, jg = 2 * hid + j, jo = 3 * hid + j;
    const A i = a[j], f = a[jf], g = a[jg], o = a[jo];
    const A tcv = tc[j], d = static_cast<A>(dh[j]) + static_cast<A>(gh[j]);
    const A dc = carry[j] + d * o * (A(1) - tcv * tcv);
    const A d_i = dc * g * i * (A(1) - i), d_f = dc * static_cast<A>(c[j]) * f * (A(1) - f);
    const A d_g = dc * i * (A(1) - g * g), d_o = d * tcv * o * (A(1) - o);
    out[j] = d_i;
    out[jf] = d_f;
    out[jg] = d_g;
    out[jo] = d_o;
    sums[j] += d_i;
    sums[jf] += d_f;
    sums[jg] += d_g;
    sums[jo] += d_o;
    carry[j] = dc * f;
  }
}

// ---------------------------------------------------------------------------- Elman

// h_{t+1} = tanh(proj_t + h_t @ W.T).
// states [L + 1, B, H] (h_0 filled in), w_t = W.T [H, H]. Without w_in, inputs are the
// projections proj [L, B, H]; with w_in = W_ih.T [I, H] and bias [H], inputs are the layer
// inputs x [L, B, I] and proj_t = x_t @ W_ih.T + bias is computed in the row pass (for a
// few inputs: saves writing and reading back the [L, B, H] projections).
void elman_forward(Tensor states, const Tensor& inputs, const Tensor& w_t,
                   const std::optional<Tensor>& w_in, const std::optional<Tensor>& bias,
                   int64_t min_rows) {
  check_unit_stride({&states, &inputs}, "elman_forward");
  const int64_t steps = inputs.size(0), hid = states.size(2);
  const bool folded = w_in.has_value();
  TORCH_CHECK(!folded || bias.has_value(), "elman_forward: w_in needs bias");
  const Tensor w_in_ = folded ? w_in->contiguous() : Tensor();
  const Tensor b_ = folded ? bias->contiguous() : Tensor();
  const int64_t n_in = inputs.size(2);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, states.scalar_type(), "elman_forward", [&] {
    using acc = at::opmath_type<scalar_t>;
    over_rows(inputs.size(1), min_rows, [&](int64_t lo, int64_t hi, int64_t) {
      auto h = steps_of(states, lo, hi);
      auto p = steps_of(inputs, lo, hi);
      const StepProduct product(w_t, hi - lo);
      std::vector<acc> scratch(folded ? hid : 0);
      for (int64_t t = 0; t < steps; ++t) {
        product.run(h[t], h[t + 1]);
        for (int64_t r = 0; r < hi - lo; ++r) {
          if (folded) {
            elman_forward_row<scalar_t, acc>(hid, row<scalar_t>(h[t + 1], r),
                                             b_.data_ptr<scalar_t>(), row<scalar_t>(p[t], r),
                                             n_in, w_in_.data_ptr<scalar_t>(), scratch.data());
          } else {
            elman_forward_row<scalar_t, acc>(hid, row<scalar_t>(h[t + 1], r),
                                             row<scalar_t>(p[t], r));
          }
        }
      }
    });
  });
}

// Fills da [L, B, H] (or a [2, B, H] ring, below) with the pre-activation gradients:
// da_t = (grad_t + da_{t+1} @ W) * (1 - h_{t+1}^2).
// states [L + 1, B, H], grad [L, B, H] (dLoss/dh from above), weight W [H, H].
// Returns the per-block partial sums [blocks, H, H] of the weight gradient
// sum_t da_t.T @ h_{t-1} when weight_grad is set and the dtype allows (else empty), and,
// given the inputs x [L, B, I] of a folded input projection (see elman_forward), the
// per-block sums [blocks, I + 1, H] of x.T @ da and of da: the gradients of W_ih.T and of
// the bias, in the accumulation type (else empty).
std::tuple<Tensor, Tensor> elman_backward(Tensor da, const Tensor& states, const Tensor& grad,
                                          const Tensor& weight, bool weight_grad,
                                          const std::optional<Tensor>& inputs,
                                          int64_t min_rows) {
  check_unit_stride({&da, &states, &grad}, "elman_backward");
  const int64_t steps = grad.size(0), hid = da.size(2);
  // da [2, B, H]: a ring of the last two steps' gradients (step t in slot t % 2), for a
  // caller that needs none of them afterwards but step 0's.
  const bool ring = da.size(0) != steps;
  TORCH_CHECK(!ring || da.size(0) == 2, "elman_backward: da must have L or 2 steps");
  const auto slot = [ring](int64_t t) { return ring ? t % 2 : t; };
  Tensor dw = weight_grad_partials(weight_grad, da.size(1), min_rows, hid, hid, da);
  const bool folded = inputs.has_value();
  const int64_t n_in = folded ? inputs->size(2) : 0;
  if (folded) check_unit_stride({&*inputs}, "elman_backward");
  Tensor in_sums = folded ? block_sums(da.size(1), min_rows, (n_in + 1) * hid, da)
                          : at::empty({0}, da.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, da.scalar_type(), "elman_backward", [&] {
    using acc = at::opmath_type<scalar_t>;
    over_rows(da.size(1), min_rows, [&](int64_t lo, int64_t hi, int64_t block) {
      Tensor dw_block = dw.numel() ? dw[block] : Tensor();
      acc* in_sum = folded ? in_sums[block].data_ptr<acc>() : nullptr;
      std::vector<Tensor> x = folded ? steps_of(*inputs, lo, hi) : std::vector<Tensor>();
      auto d = steps_of(da, lo, hi);
      auto h = steps_of(states, lo, hi);
      auto g = steps_of(grad, lo, hi);
      const StepProduct product(weight, hi - lo);
      Tensor dh = at::zeros_like(d[0]);  // gradient through h_{t+1}: none at the last step
      for (int64_t t = steps - 1; t >= 0; --t) {
        const Tensor& d_t = d[slot(t)];
        if (t < steps - 1) product.run(d[slot(t + 1)], dh);
        for (int64_t r = 0; r < hi - lo; ++r) {
          elman_backward_row<scalar_t, acc>(hid, row<scalar_t>(dh, r), row<scalar_t>(g[t], r),
                                            row<scalar_t>(h[t + 1], r), row<scalar_t>(d_t, r));
          if (folded) {  // [x.T @ d; d]: the gradients of W_ih.T and of the bias
            add_input_grads<scalar_t, acc>(hid, row<scalar_t>(d_t, r), row<scalar_t>(x[t], r),
                                           n_in, in_sum);
            add_row<scalar_t, acc>(hid, row<scalar_t>(d_t, r), in_sum + n_in * hid);
          }
        }
        if (dw_block.defined()) add_weight_grad(dw_block, d_t, h[t]);
      }
    });
  });
  return {dw, in_sums};
}

// ------------------------------------------------------------------------------ GRU

// torch.nn.GRU equations, gates r, z, n.
// Filled: states [L + 1, B, H] (h_0 given); rzg [L, B, 3H]: r, z and
// gh_n = h_{t-1} @ W_hn.T + b_hn per step; n [L, B, H]: candidate states.
// Given: gi [L, B, 3H] = x @ W_ih.T (no bias), bias [3H] = [b_ir + b_hr, b_iz + b_hz, b_hn],
// b_in [H], w_t = W_hh.T [H, 3H]. Given w_in = W_ih.T [I, 3H], gi holds the layer inputs
// x [L, B, I] instead and each row's gates are projected in the loop (see elman_forward).
void gru_forward(Tensor states, Tensor rzg, Tensor n, const Tensor& gi, const Tensor& bias,
                 const Tensor& b_in, const Tensor& w_t, const std::optional<Tensor>& w_in,
                 int64_t min_rows) {
  check_unit_stride({&states, &rzg, &n, &gi}, "gru_forward");
  const int64_t steps = n.size(0), hid = n.size(2), n_in = gi.size(2);
  const Tensor b_in_ = b_in.contiguous(), bias_ = bias.contiguous();
  const bool folded = w_in.has_value();
  const Tensor w_in_ = folded ? w_in->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, n.scalar_type(), "gru_forward", [&] {
    using acc = at::opmath_type<scalar_t>;
    const scalar_t* b = bias_.data_ptr<scalar_t>();
    const scalar_t* bn = b_in_.data_ptr<scalar_t>();
    over_rows(n.size(1), min_rows, [&](int64_t lo, int64_t hi, int64_t) {
      auto h = steps_of(states, lo, hi);
      auto a = steps_of(rzg, lo, hi);
      auto n_ = steps_of(n, lo, hi);
      auto gi_ = steps_of(gi, lo, hi);
      const StepProduct product(w_t, hi - lo);
      std::vector<acc> sum(folded ? 3 * hid : 0);
      std::vector<scalar_t> gates(folded ? 3 * hid : 0);  // one row's input gates, when folded
      for (int64_t t = 0; t < steps; ++t) {
        product.run(h[t], a[t]);  // h @ W_hh.T
        for (int64_t r = 0; r < hi - lo; ++r) {
          const scalar_t* gi_r =
              folded ? project_row<scalar_t, acc>(3 * hid, row<scalar_t>(gi_[t], r), n_in,
                                                  w_in_.data_ptr<scalar_t>(), sum.data(),
                                                  gates.data())
                     : row<scalar_t>(gi_[t], r);
          gru_forward_row<scalar_t, acc>(hid, row<scalar_t>(a[t], r), gi_r, b, bn,
                                         row<scalar_t>(h[t], r), row<scalar_t>(n_[t], r),
                                         row<scalar_t>(h[t + 1], r));
        }
      }
    });
  });
}

// Filled: dgh [L, B, 3H]: gradients at h_{t-1} @ W_hh.T + b_hh; dgi [L, B, 3H]: gradients
// at gi; dh [L, B, H]: total gradient at each h_t. Given: states, rzg, n of gru_forward,
// grad [L, B, H] (dLoss/dh from above), weight W_hh [3H, H].
// Returns per-block sums [blocks, 4H] of dgh (3H) and of dgi's n chunk (H), the per-block
// weight-gradient partial sums as elman_backward does ([blocks, 3H, H]), and, given the
// inputs x [L, B, I] of a folded input projection, per-block sums [blocks, I * 3H] of
// x.T @ dgi, the gradient of W_ih.T; dgi is then not filled (it may be empty).
std::tuple<Tensor, Tensor, Tensor> gru_backward(Tensor dgh, Tensor dgi, Tensor dh,
                                                const Tensor& states, const Tensor& rzg,
                                                const Tensor& n, const Tensor& grad,
                                                const Tensor& weight, bool weight_grad,
                                                const std::optional<Tensor>& inputs,
                                                int64_t min_rows) {
  const bool folded = inputs.has_value();
  check_unit_stride({&dgh, &dh, &states, &rzg, &n, &grad}, "gru_backward");
  if (folded) {
    check_unit_stride({&*inputs}, "gru_backward");
  } else {
    check_unit_stride({&dgi}, "gru_backward");
  }
  const int64_t steps = n.size(0), hid = n.size(2);
  const int64_t n_in = folded ? inputs->size(2) : 0;
  Tensor sums = block_sums(n.size(1), min_rows, 4 * hid, n);
  Tensor dw = weight_grad_partials(weight_grad, n.size(1), min_rows, 3 * hid, hid, n);
  Tensor in_sums = folded ? block_sums(n.size(1), min_rows, n_in * 3 * hid, n)
                          : at::empty({0}, n.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, n.scalar_type(), "gru_backward", [&] {
    using acc = at::opmath_type<scalar_t>;
    over_rows(n.size(1), min_rows, [&](int64_t lo, int64_t hi, int64_t block) {
      acc* block_sum = sums[block].data_ptr<acc>();
      Tensor dw_block = dw.numel() ? dw[block] : Tensor();
      acc* in_sum = folded ? in_sums[block].data_ptr<acc>() : nullptr;
      std::vector<Tensor> x = folded ? steps_of(*inputs, lo, hi) : std::vector<Tensor>();
      std::vector<scalar_t> dgi_row(folded ? 3 * hid : 0);  // dgi of one row, when folded
      auto dgh_ = steps_of(dgh, lo, hi);
      auto dgi_ = folded ? std::vector<Tensor>() : steps_of(dgi, lo, hi);
      auto dh_ = steps_of(dh, lo, hi);
      auto h = steps_of(states, lo, hi);
      auto a = steps_of(rzg, lo, hi);
      auto n_ = steps_of(n, lo, hi);
      auto g = steps_of(grad, lo, hi);
      const StepProduct product(weight, hi - lo);
      for (int64_t t = steps - 1; t >= 0; --t) {
        const bool last = t == steps - 1;
        if (last) {
          dh_[t].copy_(g[t]);
        } else {
          product.run(dgh_[t + 1], dh_[t]);
        }
        for (int64_t r = 0; r < hi - lo; ++r) {
          scalar_t* dhr = row<scalar_t>(dh_[t], r);
          if (!last) {  // from above, and the path through h_{t+1} = ... + z_{t+1} h_t
            add_product<scalar_t, acc>(hid, dhr, row<scalar_t>(g[t], r),
                                       row<scalar_t>(dh_[t + 1], r),
                                       row<scalar_t>(a[t + 1], r) + hid);
          }
          scalar_t* dgi_r = folded ? dgi_row.data() : row<scalar_t>(dgi_[t], r);
          gru_backward_row<scalar_t, acc>(hid, dhr, row<scalar_t>(a[t], r),
                                          row<scalar_t>(n_[t], r), row<scalar_t>(h[t], r),
                                          row<scalar_t>(dgh_[t], r), dgi_r, block_sum);
          if (folded) {
            add_input_grads<scalar_t, acc>(3 * hid, dgi_r, row<scalar_t>(x[t], r), n_in, in_sum);
          }
        }
        if (dw_block.defined()) add_weight_grad(dw_block, dgh_[t], h[t]);
      }
    });
  });
  return {sums, dw, in_sums};
}

// ----------------------------------------------------------------------------- LSTM

// torch.nn.LSTM equations, gates i, f, g, o.
// Filled: h [L + 1, B, H] and c [L + 1, B, H] (step 0 given); act [L, B, 4H]: gate
// activations; tc [L, B, H]: tanh(c_t). Given: gi [L, B, 4H] = x @ W_ih.T (no bias),
// bias [4H] = b_ih + b_hh, w_t = W_hh.T [H, 4H]. Given w_in = W_ih.T [I, 4H], gi holds
// the layer inputs x [L, B, I] instead (see gru_forward).
void lstm_forward(Tensor h, Tensor c, Tensor act, Tensor tc, const Tensor& gi,
                  const Tensor& bias, const Tensor& w_t, const std::optional<Tensor>& w_in,
                  int64_t min_rows) {
  check_unit_stride({&h, &c, &act, &tc, &gi}, "lstm_forward");
  const int64_t steps = gi.size(0), hid = h.size(2), n_in = gi.size(2);
  const Tensor bias_ = bias.contiguous();
  const bool folded = w_in.has_value();
  const Tensor w_in_ = folded ? w_in->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, act.scalar_type(), "lstm_forward", [&] {
    using acc = at::opmath_type<scalar_t>;
    const scalar_t* b = bias_.data_ptr<scalar_t>();
    over_rows(gi.size(1), min_rows, [&](int64_t lo, int64_t hi, int64_t) {
      auto h_ = steps_of(h, lo, hi);
      auto c_ = steps_of(c, lo, hi);
      auto a = steps_of(act, lo, hi);
      auto tc_ = steps_of(tc, lo, hi);
      auto gi_ = steps_of(gi, lo, hi);
      const StepProduct product(w_t, hi - lo);
      std::vector<acc> sum(folded ? 4 * hid : 0);
      std::vector<scalar_t> gates(folded ? 4 * hid : 0);  // one row's input gates, when folded
      for (int64_t t = 0; t < steps; ++t) {
        product.run(h_[t], a[t]);  // h_{t-1} @ W_hh.T
        for (int64_t r = 0; r < hi - lo; ++r) {
          const scalar_t* gi_r =
              folded ? project_row<scalar_t, acc>(4 * hid, row<scalar_t>(gi_[t], r), n_in,
                                                  w_in_.data_ptr<scalar_t>(), sum.data(),
                                                  gates.data())
                     : row<scalar_t>(gi_[t], r);
          lstm_forward_row<scalar_t, acc>(hid, row<scalar_t>(a[t], r), gi_r, b,
                                          row<scalar_t>(c_[t], r), row<scalar_t>(c_[t + 1], r),
                                          row<scalar_t>(tc_[t], r), row<scalar_t>(h_[t + 1], r));
        }
      }
    });
  });
}

// Filled: dgates [L, B, 4H]: gradients at the gate pre-activations; dc0 [B, H]: gradient
// at c_0. Given: h, c, act, tc of lstm_forward, grad_h [L, B, H] (dLoss/dh_t from above),
// grad_c [B, H] (dLoss/dc_L), weight W_hh [4H, H].
// Returns per-block sums [blocks, 4H] of dgates (the bias gradient), the per-block
// weight-gradient partial sums as elman_backward does ([blocks, 4H, H]; h [L + 1, B, H]
// are the hidden states of lstm_forward), and, given the inputs x [L, B, I] of a folded
// input projection, per-block sums [blocks, I * 4H] of x.T @ dgates (else empty).
std::tuple<Tensor, Tensor, Tensor> lstm_backward(Tensor dgates, Tensor dc0, const Tensor& h,
                                                 const Tensor& c, const Tensor& act,
                                                 const Tensor& tc, const Tensor& grad_h,
                                                 const Tensor& grad_c, const Tensor& weight,
                                                 bool weight_grad,
                                                 const std::optional<Tensor>& inputs,
                                                 int64_t min_rows) {
  check_unit_stride({&dgates, &dc0, &h, &c, &act, &tc, &grad_h}, "lstm_backward");
  const bool folded = inputs.has_value();
  if (folded) check_unit_stride({&*inputs}, "lstm_backward");
  const int64_t steps = act.size(0), hid = tc.size(2);
  const int64_t n_in = folded ? inputs->size(2) : 0;
  Tensor sums = block_sums(act.size(1), min_rows, 4 * hid, act);
  Tensor dw = weight_grad_partials(weight_grad, act.size(1), min_rows, 4 * hid, hid, act);
  Tensor in_sums = folded ? block_sums(act.size(1), min_rows, n_in * 4 * hid, act)
                          : at::empty({0}, act.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, act.scalar_type(), "lstm_backward", [&] {
    using acc = at::opmath_type<scalar_t>;
    over_rows(act.size(1), min_rows, [&](int64_t lo, int64_t hi, int64_t block) {
      acc* block_sum = sums[block].data_ptr<acc>();
      Tensor dw_block = dw.numel() ? dw[block] : Tensor();
      acc* in_sum = folded ? in_sums[block].data_ptr<acc>() : nullptr;
      std::vector<Tensor> x = folded ? steps_of(*inputs, lo, hi) : std::vector<Tensor>();
      auto dg = steps_of(dgates, lo, hi);
      auto h_ = steps_of(h, lo, hi);
      auto c_ = steps_of(c, lo, hi);
      auto a = steps_of(act, lo, hi);
      auto tc_ = steps_of(tc, lo, hi);
      auto g = steps_of(grad_h, lo, hi);
      const int64_t rows = hi - lo;
      const StepProduct product(weight, rows);
      Tensor dh = at::zeros({rows, hid}, act.options());  // through h_{t+1}: none at the last step
      // dc_{t+1} * f_{t+1}, carried from step to step, in the accumulation type
      Tensor carry =
          grad_c.slice(0, lo, hi).to(c10::CppTypeToScalarType<acc>::value, false, true).contiguous();
      for (int64_t t = steps - 1; t >= 0; --t) {
        if (t < steps - 1) product.run(dg[t + 1], dh);
        for (int64_t r = 0; r < rows; ++r) {
          lstm_backward_row<scalar_t, acc>(hid, row<scalar_t>(dh, r), row<scalar_t>(g[t], r),
                                           row<scalar_t>(a[t], r),
                                           row<scalar_t>(tc_[t], r), row<scalar_t>(c_[t], r),
                                           row<acc>(carry, r), row<scalar_t>(dg[t], r),
                                           block_sum);
          if (folded) {
            add_input_grads<scalar_t, acc>(4 * hid, row<scalar_t>(dg[t], r),
                                           row<scalar_t>(x[t], r), n_in, in_sum);
          }
        }
        if (dw_block.defined()) add_weight_grad(dw_block, dg[t], h_[t]);
      }
      dc0.slice(0, lo, hi).copy_(carry);
    });
  });
  return {sums, dw, in_sums};
}

// ------------------------------------------------------------------ weight gradient

// sum_k dgates[k]^T prev[k] for dgates [K, G], prev [K, H] (K = L * B): the recurrent weight
// gradient [G, H]. The long K axis is cut into one contiguous slab per thread; each
// thread multiplies its slab on one thread and the partial products are added in slab
// order. Two threads splitting one [H, K] x [K, G] product run it slower than that.
Tensor weight_grad(const Tensor& dgates, const Tensor& prev) {
  const int64_t k = dgates.size(0);
  const int64_t slabs = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), k / 256));
  const int64_t rows = (k + slabs - 1) / slabs;
  Tensor partial = at::empty({slabs, prev.size(1), dgates.size(1)}, dgates.options());
  at::parallel_for(0, slabs, 1, [&](int64_t first, int64_t last) {
    at::NoGradGuard no_grad;
    OneBlasThread one_blas_thread;
    for (int64_t i = first; i < last; ++i) {
      const int64_t lo = i * rows, hi = std::min(k, lo + rows);
      Tensor out = partial[i];
      at::mm_out(out, prev.slice(0, lo, hi).t(), dgates.slice(0, lo, hi));  // [H, G]
    }
  });
  return partial.sum(0).t();  // [G, H]
}

}  // namespace

TORCH_LIBRARY(elman_native, m) {
  m.def("weight_grad(Tensor dgates, Tensor prev) -> Tensor", &weight_grad);
  m.def(
      "elman_forward(Tensor(a!) states, Tensor inputs, Tensor w_t, Tensor? w_in, Tensor? bias, "
      "int min_rows) -> ()",
      &elman_forward);
  m.def(
      "elman_backward(Tensor(a!) da, Tensor states, Tensor grad, Tensor weight, bool weight_grad, "
      "Tensor? inputs, int min_rows) -> (Tensor, Tensor)",
      &elman_backward);
  m.def(
      "gru_forward(Tensor(a!) states, Tensor(b!) rzg, Tensor(c!) n, Tensor gi, Tensor bias, "
      "Tensor b_in, Tensor w_t, Tensor? w_in, int min_rows) -> ()",
      &gru_forward);
  m.def(
      "gru_backward(Tensor(a!) dgh, Tensor(b!) dgi, Tensor(c!) dh, Tensor states, Tensor rzg, "
      "Tensor n, Tensor grad, Tensor weight, bool weight_grad, Tensor? inputs, int min_rows) "
      "-> (Tensor, Tensor, Tensor)",
      &gru_backward);
  m.def(
      "lstm_forward(Tensor(a!) h, Tensor(b!) c, Tensor(c!) act, Tensor(d!) tc, Tensor gi, "
      "Tensor bias, Tensor w_t, Tensor? w_in, int min_rows) -> ()",
      &lstm_forward);
  m.def(
      "lstm_backward(Tensor(a!) dgates, Tensor(b!) dc0, Tensor h, Tensor c, Tensor act, "
      "Tensor tc, Tensor grad_h, Tensor grad_c, Tensor weight, bool weight_grad, Tensor? inputs, "
      "int min_rows) -> (Tensor, Tensor, Tensor)",
      &lstm_backward);
}
