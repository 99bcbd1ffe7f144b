// Every fast kernel variant against the double-accumulating reference, at sizes below, equal to and
// above each vector width (tails), and on adversarial inputs. Exit code 0 = all passed.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mobpose/kernels.h"
#include "test_util.h"

using namespace mobpose::kernels;

namespace {

// ---- Tolerances (fast float kernel vs double reference), one place, each with its reason ----------
// exp: degree-7 polynomial after Cody-Waite reduction; 1 ulp seen (7.4e-8); 4e-7 (about 3 ulp) flags
// any regression in the reduction or coefficients. Below -87.34 the fast exp flushes to 0.
constexpr double kExpRelTol = 4e-7;
// soft-argmax coordinates: float sums over one plane (<= 4096 terms over 8-16 lanes) before the double
// depth sum, and ~2 ulp in exp; seen <= 3e-6 * extent on 64^3. 2e-5 * (extent) + 1e-5 absolute.
constexpr double kSoftArgmaxCoordRel = 2e-5, kSoftArgmaxCoordAbs = 1e-5;
// peak probability: the same sums, relative to the peak itself.
constexpr double kSoftArgmaxPeakRel = 2e-5;
// attention output: float dot products of length dh and float softmax sums over <= 243 terms; seen
// <= 1e-5 relative to max|v| at logits of order 1. With logits of order 1e4 the float logit itself
// is off by about sqrt(dh) * 2^-24 * sum_c |q_c k_c| / sqrt(dh) (a dot product's rounding), and a
// logit error dl moves the output by up to 2 * dl * max|v|; that term is added per row (seen 6e-4
// absolute there, the bound gives ~1e-2): it is float arithmetic, not a kernel bug.
constexpr double kMqaRel = 2e-5;
// linear: a float dot product of length k (plus the bias) against the double one: error <= k * eps *
// sum_j |x_j w_j| in the worst case, ~sqrt(k) * eps typically (seen 3.8e-7 of |b| + sum_j |x_j w_j|);
// 1e-6 of it flags a wrong weight, column or epilogue (errors of order 1), never rounding. The GELU
// epilogue adds the exp's ~1 ulp and a division's half ulp, relative to |x|.
constexpr double kLinearRel = 1e-6, kGeluRel = 1.5e-6;
// LayerNorm: float lane sums reduced in double for the mean and the variance, then (x - mean) * rstd
// in float: 1e-6 relative to the output scale max|gamma| * sqrt(c), plus the float mean's rounding
// (an ulp of |mean|) times rstd, which dominates when the mean is far from 0 against the spread.
constexpr double kLayerNormRel = 1e-6;
constexpr double kFloatEps = 5.96e-8;
// -----------------------------------------------------------------------------------------------

void test_exp(const KernelSet& ks, Test& t) {
  std::vector<float> x, y(0), yr(0);
  for (double v = -87.0; v <= 88.0; v += 0.0137) x.push_back(static_cast<float>(v));
  const float specials[] = {0.f, -0.f, 1e-30f, -1e-30f, -88.f, -100.f, -1e4f,
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN()};
  for (float s : specials) x.push_back(s);
  y.resize(x.size());
  ks.exp(x.data(), y.data(), x.size());
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    if (std::isnan(x[i])) {
      t.check(std::isnan(y[i]), "%s: exp(NaN) must be NaN, got %g", ks.exp_name, y[i]);
    } else if (x[i] < -87.34f) {  // denormal range: the fast exp flushes to 0
      t.check(y[i] == 0.f || std::string(ks.variant) == "reference",
              "%s: exp(%g) must flush to 0, got %g", ks.exp_name, x[i], y[i]);
    } else {
      const double rel = std::fabs(y[i] - want) / want;
      worst = rel > worst ? rel : worst;
    }
  }
  t.check(worst <= kExpRelTol, "%s: max relative error %.3g > %.3g", ks.exp_name, worst, kExpRelTol);
  std::printf("  %s: max relative error %.3g over [-87, 88]\n", ks.exp_name, worst);
}

enum class Fill { kRandom, kPeak, kFlat, kHuge, kNaN, kPosInf, kNegInf };
const char* fill_name(Fill f) {
  switch (f) {
    case Fill::kRandom: return "random";
    case Fill::kPeak: return "peak";
    case Fill::kFlat: return "flat";
    case Fill::kHuge: return "+-1e4";
    case Fill::kNaN: return "nan";
    case Fill::kPosInf: return "+inf";
    case Fill::kNegInf: return "-inf";
  }
  return "?";
}

void fill_volume(std::vector<float>& x, Fill fill, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 2.f);
  std::uniform_int_distribution<size_t> pos(0, x.size() - 1);
  switch (fill) {
    case Fill::kRandom:
      for (float& v : x) v = normal(rng);
      break;
    case Fill::kPeak:
      for (float& v : x) v = normal(rng) * 0.1f - 3.f;
      x[pos(rng)] = 60.f;
      break;
    case Fill::kFlat:
      for (float& v : x) v = 0.25f;
      break;
    case Fill::kHuge: {
      std::uniform_int_distribution<int> coin(0, 1);
      for (float& v : x) v = coin(rng) ? 1e4f : -1e4f;
      break;
    }
    case Fill::kNaN:
      for (float& v : x) v = normal(rng);
      x[pos(rng)] = std::numeric_limits<float>::quiet_NaN();
      break;
    case Fill::kPosInf:
      for (float& v : x) v = normal(rng);
      x[pos(rng)] = std::numeric_limits<float>::infinity();
      break;
    case Fill::kNegInf:
      for (float& v : x) v = normal(rng);
      x[pos(rng)] = -std::numeric_limits<float>::infinity();
      x[0] = -std::numeric_limits<float>::infinity();
      break;
  }
}

void test_softargmax(const KernelSet& ks, const KernelSet& ref, Test& t) {
  std::mt19937 rng(1234);
  // Widths around 4, 8 and 16 lanes and the ConvNeXtPose sizes; depth/height small except the real ones.
  const size_t widths[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64};
  struct Dims { size_t d, h, w; };
  std::vector<Dims> dims;
  for (size_t w : widths) dims.push_back({3, 5, w});
  dims.push_back({32, 32, 32});
  dims.push_back({64, 64, 64});
  dims.push_back({1, 1, 1});
  const Fill fills[] = {Fill::kRandom, Fill::kPeak, Fill::kFlat, Fill::kHuge,
                        Fill::kNaN,    Fill::kPosInf, Fill::kNegInf};
  for (int mode = 0; mode < kNumSoftArgmaxModes; ++mode) {
    double worst = 0.0;
    for (const Dims& dm : dims) {
      // Buffers are sized exactly, so a read past a tail is caught by the AddressSanitizer build
      // that .ci/run also runs.
      const size_t volume = dm.d * dm.h * dm.w;
      for (Fill fill : fills) {
        if (volume == 1 && fill != Fill::kRandom) continue;
        std::vector<float> x(volume);
        fill_volume(x, fill, rng);
        float want[3], want_peak, got[3], got_peak;
        ref.softargmax3d[mode](x.data(), dm.d, dm.h, dm.w, want, &want_peak);
        ks.softargmax3d[mode](x.data(), dm.d, dm.h, dm.w, got, &got_peak);
        const double extent[3] = {double(dm.w), double(dm.h), double(dm.d)};
        for (int c = 0; c < 3; ++c) {
          const double tol = kSoftArgmaxCoordAbs + kSoftArgmaxCoordRel * extent[c];
          const char* what = ks.softargmax3d_names[mode];
          if (!t.check_close(got[c], want[c], tol, "%s %zux%zux%zu %s coord %d", what, dm.d, dm.h,
                             dm.w, fill_name(fill), c)) {
            break;
          }
          if (std::isfinite(want[c])) {
            const double e = std::fabs(got[c] - want[c]) / extent[c];
            worst = e > worst ? e : worst;
          }
        }
        t.check_close(got_peak, want_peak, kSoftArgmaxPeakRel * std::fabs(want_peak) + 1e-12,
                      "%s %zux%zux%zu %s peak", ks.softargmax3d_names[mode], dm.d, dm.h, dm.w,
                      fill_name(fill));
        if (fill == Fill::kNaN) {
          t.check(std::isnan(got[0]) && std::isnan(got[1]) && std::isnan(got[2]),
                  "%s: NaN in must give NaN out", ks.softargmax3d_names[mode]);
        }
      }
    }
    std::printf("  %s: max coordinate error / extent %.3g\n", ks.softargmax3d_names[mode], worst);
  }
}

void test_mqa(const KernelSet& ks, const KernelSet& ref, Test& t) {
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.f, 1.f);
  const size_t tokens[] = {1, 3, 4, 5, 8, 15, 16, 17, 18, 27, 33, 81, 243};
  const size_t dims[] = {1, 3, 4, 7, 8, 16, 17, 32};
  const size_t heads_list[] = {1, 3, 8};
  double worst = 0.0;
  for (int prior = 0; prior < kNumPriorModes; ++prior) {
    for (size_t n : tokens) {
      for (size_t dh : dims) {
        if (n == 243 && dh != 16 && dh != 17) continue;
        for (size_t heads : heads_list) {
          for (int causal = 0; causal < 2; ++causal) {
            for (int adversarial = 0; adversarial < 3; ++adversarial) {
              const size_t rows = heads * n;
              std::vector<float> q(rows * dh), k(n * dh), v(n * dh), f(n * n);
              const float qs = adversarial == 1 ? 300.f : 1.f;  // logits of order 1e4
              for (float& x : q) x = normal(rng) * qs;
              for (float& x : k) x = normal(rng) * (adversarial == 1 ? 30.f : 1.f);
              for (float& x : v) x = normal(rng);
              for (float& x : f) x = prior == 1 ? 1.f + 0.5f * normal(rng) : normal(rng);
              size_t nan_row = rows, nan_token = n;
              if (adversarial == 2) {  // a NaN query row and a NaN value token
                nan_row = rows / 2;
                q[nan_row * dh] = std::numeric_limits<float>::quiet_NaN();
                nan_token = n / 2;
                v[nan_token * dh + dh - 1] = std::numeric_limits<float>::quiet_NaN();
              }
              // A partial row range with an unaligned start, as the threaded operator issues.
              const size_t rb = rows > 5 ? 1 : 0, re = rows > 5 ? rows - 1 : rows;
              std::vector<float> want(rows * dh, -7.f), got(rows * dh, -7.f);
              std::vector<float> scratch(mqa_scratch_floats(n, dh), 12345.f);
              std::vector<float> ft(n * (n + kMqaFactorPad));
              mqa_factor_transpose(f.data(), n, ft.data());
              ref.mqa[prior](q.data(), k.data(), v.data(), ft.data(), n, dh, rb, re, causal,
                             want.data(), scratch.data());
              ks.mqa[prior](q.data(), k.data(), v.data(), ft.data(), n, dh, rb, re, causal,
                            got.data(), scratch.data());
              double vmax = 0.0;
              for (float x : v) vmax = std::isfinite(x) ? std::fmax(vmax, std::fabs(x)) : vmax;
              double fmax = 1.0;
              for (float x : f) fmax = std::fmax(fmax, std::fabs(x));
              for (size_t r = 0; r < rows; ++r) {
                double dot_abs = 0.0;  // max_j sum_c |q_rc k_jc| / sqrt(dh), the logit's scale
                for (size_t j = 0; j < n; ++j) {
                  double s = 0.0;
                  for (size_t c = 0; c < dh; ++c) s += std::fabs(q[r * dh + c] * k[j * dh + c]);
                  dot_abs = std::fmax(dot_abs, s / std::sqrt(double(dh)));
                }
                const double tol =
                    vmax * (kMqaRel + 2.0 * std::sqrt(double(dh)) * kFloatEps * dot_abs * fmax);
                for (size_t c = 0; c < dh; ++c) {
                  const size_t i = r * dh + c;
                  if (r < rb || r >= re) {
                    t.check(got[i] == -7.f, "%s wrote outside its row range", ks.mqa_names[prior]);
                    continue;
                  }
                  if (!t.check_close(got[i], want[i], tol,
                                     "%s n=%zu dh=%zu heads=%zu causal=%d adv=%d row %zu ch %zu",
                                     ks.mqa_names[prior], n, dh, heads, causal, adversarial, r, c)) {
                    r = rows;
                    break;
                  }
                  if (std::isfinite(want[i])) worst = std::fmax(worst, std::fabs(got[i] - want[i]) / vmax);
                }
              }
              if (adversarial == 2 && nan_row >= rb && nan_row < re) {
                t.check(std::isnan(got[nan_row * dh]), "%s: NaN query row must give NaN",
                        ks.mqa_names[prior]);
                // Causal rows before the NaN value token never see it.
                if (causal && nan_token > 0 && rb == 0) {
                  t.check(!std::isnan(got[(nan_token - 1) * dh + dh - 1]),
                          "%s: a causal row saw a future NaN value", ks.mqa_names[prior]);
                }
              }
            }
          }
        }
      }
    }
  }
  std::printf("  %s..: max error / max|v| %.3g\n", ks.mqa_names[0], worst);
}

// The PRM-layout attention against its reference: token strides wider than the heads (the temporal
// blocks' layout) and equal to them (the spatial blocks'), row ranges starting mid-token, heads that
// do and do not divide the vector width, a NaN query and a NaN future value; nothing outside the
// asked rows' outputs may be written.
void test_mqa_rows(const KernelSet& ks, const KernelSet& ref, Test& t) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  double worst = 0.0;
  for (int prior = 0; prior < kNumPriorModes; ++prior) {
    for (size_t n : {1, 2, 5, 9, 17, 27, 33}) {
      for (size_t dh : {1, 3, 4, 8, 16, 17}) {
        for (size_t heads : {1, 2, 3, 4, 8}) {
          for (int causal = 0; causal < 2; ++causal) {
            for (int layout = 0; layout < 3; ++layout) {  // 0 packed, 1 strided tokens, 2 strided + NaNs
              const size_t width = heads * dh;
              const size_t qs = layout == 0 ? width : width * 3 + 1, kvs = layout == 0 ? 2 * dh : 5 * dh + 2;
              const size_t os = layout == 0 ? width : width + 7;
              std::vector<float> q(n * qs), kv(n * kvs), f(n * n);
              for (float& x : q) x = normal(rng);
              for (float& x : kv) x = normal(rng);
              for (float& x : f) x = prior == 1 ? 1.f + 0.5f * normal(rng) : normal(rng);
              const size_t rows = n * heads;
              size_t nan_row = rows, nan_token = n;
              if (layout == 2) {
                nan_row = rows / 2;
                q[nan_row / heads * qs + nan_row % heads * dh] = std::numeric_limits<float>::quiet_NaN();
                nan_token = n / 2;
                kv[nan_token * kvs + dh + dh - 1] = std::numeric_limits<float>::quiet_NaN();  // its value
              }
              const float* k = kv.data();
              const float* v = kv.data() + dh;
              std::vector<float> fr(n * (rows + kMqaFactorPad));
              mqa_rows_factor(f.data(), n, heads, fr.data());
              const size_t rb = rows > 5 ? 1 : 0, re = rows > 5 ? rows - 1 : rows;
              std::vector<float> want(n * os, -7.f), got(n * os, -7.f);
              std::vector<float> scratch(mqa_scratch_floats(n, dh), 12345.f);
              ref.mqa_rows[prior](q.data(), qs, k, v, kvs, fr.data(), n, heads, dh, rb, re, causal, want.data(), os,
                                  scratch.data());
              ks.mqa_rows[prior](q.data(), qs, k, v, kvs, fr.data(), n, heads, dh, rb, re, causal, got.data(), os,
                                 scratch.data());
              double vmax = 0.0;
              for (size_t i = 0; i < n; ++i) {
                for (size_t c = 0; c < dh; ++c) {
                  const float x = v[i * kvs + c];
                  vmax = std::isfinite(x) ? std::fmax(vmax, std::fabs(x)) : vmax;
                }
              }
              bool ok = true;
              for (size_t i = 0; i < n * os && ok; ++i) {
                const size_t tok = i / os, col = i % os, r = tok * heads + col / dh;
                if (col >= width || r < rb || r >= re) {
                  ok = t.check(got[i] == -7.f, "%s wrote outside its rows (n=%zu heads=%zu dh=%zu)",
                               ks.mqa_rows_names[prior], n, heads, dh);
                  continue;
                }
                ok = t.check_close(got[i], want[i], kMqaRel * vmax,
                                   "%s n=%zu dh=%zu heads=%zu causal=%d layout=%d row %zu ch %zu",
                                   ks.mqa_rows_names[prior], n, dh, heads, causal, layout, r, col % dh);
                if (std::isfinite(want[i])) worst = std::fmax(worst, std::fabs(got[i] - want[i]) / vmax);
              }
              if (layout == 2 && nan_row >= rb && nan_row < re) {
                t.check(std::isnan(got[nan_row / heads * os + nan_row % heads * dh]),
                        "%s: NaN query row must give NaN", ks.mqa_rows_names[prior]);
                if (causal && nan_token > 0) {  // the token before the NaN value never sees it
                  const size_t r = (nan_token - 1) * heads;
                  if (r >= rb && r < re && r != nan_row) {
                    t.check(!std::isnan(got[(nan_token - 1) * os + dh - 1]), "%s: a causal row saw a future NaN value",
                            ks.mqa_rows_names[prior]);
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  std::printf("  %s..: max error / max|v| %.3g\n", ks.mqa_rows_names[0], worst);
}

// GELU of each x through a 1x1 identity linear layer, against the reference.
void check_gelu(const KernelSet& ks, const KernelSet& ref, Test& t, const float* xs, size_t n) {
  const float one = 1.f;
  std::vector<float> packed(linear_packed_floats(1, 1));
  linear_pack(&one, nullptr, 1, 1, packed.data());
  for (size_t i = 0; i < n; ++i) {
    const float xv = xs[i];
    float want = 0.f, got = 0.f;
    ref.linear(&xv, 1, 1, 1, packed.data(), 1, &want, 1, LinearEpilogue::kGeluTanh);
    ks.linear(&xv, 1, 1, 1, packed.data(), 1, &got, 1, LinearEpilogue::kGeluTanh);
    t.check_close(got, want, 1e-7 + kGeluRel * std::fabs(xv), "%s gelu(%g)", ks.linear_name, xv);
  }
}

void test_linear(const KernelSet& ks, const KernelSet& ref, Test& t) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  const size_t ms[] = {1, 2, 5, 6, 7, 12, 13, 25, 40};
  const size_t ks_[] = {1, 3, 7, 16, 64, 67, 128};
  const size_t ns[] = {1, 3, 8, 15, 16, 17, 31, 32, 33, 64, 96, 128};
  const char* epi_names[] = {"store", "gelu", "accumulate"};
  double worst = 0.0;
  for (size_t m : ms) {
    for (size_t k : ks_) {
      for (size_t n : ns) {
        const size_t ldx = k + 3, ldy = n + 5;  // strided rows, and columns past n that must stay untouched
        std::vector<float> x(m * ldx), weight(n * k), bias(n);
        for (float& v : x) v = normal(rng);
        for (float& v : weight) v = normal(rng) / std::sqrt(static_cast<float>(k));
        for (float& v : bias) v = normal(rng);
        std::vector<float> packed(linear_packed_floats(n, k), -1.f);
        linear_pack(weight.data(), bias.data(), n, k, packed.data());
        for (int e = 0; e < 3; ++e) {
          const auto epi = static_cast<LinearEpilogue>(e);
          std::vector<float> want(m * ldy), got(m * ldy);
          for (size_t i = 0; i < want.size(); ++i) want[i] = got[i] = 0.25f * static_cast<float>(i % 7);
          ref.linear(x.data(), m, k, ldx, packed.data(), n, want.data(), ldy, epi);
          ks.linear(x.data(), m, k, ldx, packed.data(), n, got.data(), ldy, epi);
          bool ok = true;
          for (size_t r = 0; r < m && ok; ++r) {
            for (size_t c = 0; c < ldy && ok; ++c) {
              const size_t i = r * ldy + c;
              if (c >= n) {
                ok = t.check(got[i] == 0.25f * static_cast<float>(i % 7), "%s n=%zu wrote column %zu past n",
                             ks.linear_name, n, c);
                continue;
              }
              double scale = std::fabs(bias[c]);
              for (size_t j = 0; j < k; ++j) scale += std::fabs(x[r * ldx + j] * weight[c * k + j]);
              if (e == 2) scale += 1.5;  // the residual's own magnitude
              const double tol = scale * (e == 1 ? kGeluRel : kLinearRel) + 1e-30;
              ok = t.check_close(got[i], want[i], tol, "%s %s m=%zu k=%zu n=%zu row %zu col %zu", ks.linear_name,
                                 epi_names[e], m, k, n, r, c);
              worst = std::fmax(worst, std::fabs(got[i] - want[i]) / scale);
            }
          }
        }
      }
    }
  }
  // GELU at the extremes: 0 far left (no NaN from exp overflow), x far right, NaN kept.
  const float xs[] = {-30.f, -9.f, -1e-3f, 0.f, 1e-3f, 9.f, 30.f, std::numeric_limits<float>::quiet_NaN()};
  check_gelu(ks, ref, t, xs, sizeof(xs) / sizeof(xs[0]));
  std::printf("  %s: max error / (|b| + sum |x w|) %.3g\n", ks.linear_name, worst);
}

// The float mean of a row is off by up to an ulp of |mean| (and x - mean rounds at |x|): that error is
// scaled by rstd, so rows with a mean far from 0 against their spread carry it. The bound of that shift
// for one row of c values.
double layernorm_shift(const float* row, size_t c, double eps) {
  double mean = 0.0, var = 0.0;
  for (size_t i = 0; i < c; ++i) mean += row[i];
  mean /= static_cast<double>(c);
  for (size_t i = 0; i < c; ++i) var += (row[i] - mean) * (row[i] - mean);
  const double rstd = 1.0 / std::sqrt(var / static_cast<double>(c) + eps);
  return 4.0 * kFloatEps * (std::fabs(mean) + std::sqrt(var)) * rstd;
}

void test_layernorm(const KernelSet& ks, const KernelSet& ref, Test& t) {
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.f, 1.f);
  double worst = 0.0;
  for (size_t c : {1, 2, 3, 7, 8, 15, 16, 17, 32, 63, 64, 65, 128}) {
    for (float offset : {0.f, 30.f, -1000.f}) {  // a mean far from 0 against a unit spread
      const size_t m = 5, ldx = c + 2, ldy = c + 1;
      std::vector<float> x(m * ldx), gamma(c), beta(c);
      for (float& v : x) v = offset + normal(rng);
      for (float& v : gamma) v = 1.f + 0.3f * normal(rng);
      for (float& v : beta) v = 0.3f * normal(rng);
      std::vector<float> want(m * ldy, 9.f), got(m * ldy, 9.f);
      ref.layernorm(x.data(), m, c, ldx, gamma.data(), beta.data(), 1e-5f, want.data(), ldy);
      ks.layernorm(x.data(), m, c, ldx, gamma.data(), beta.data(), 1e-5f, got.data(), ldy);
      double gmax = 0.0;
      for (float g : gamma) gmax = std::fmax(gmax, std::fabs(g));
      bool ok = true;
      for (size_t r = 0; r < m && ok; ++r) {
        const double shift = layernorm_shift(x.data() + r * ldx, c, 1e-5);
        const double scale = gmax * (std::sqrt(static_cast<double>(c)) + 1.0);  // |(x - mean) * rstd| <= sqrt(c)
        for (size_t i = 0; i < ldy && ok; ++i) {
          if (i >= c) {
            ok = t.check(got[r * ldy + i] == 9.f, "%s c=%zu wrote past the row", ks.layernorm_name, c);
            continue;
          }
          ok = t.check_close(got[r * ldy + i], want[r * ldy + i], kLayerNormRel * scale + gmax * shift,
                             "%s c=%zu offset=%g row %zu col %zu", ks.layernorm_name, c, offset, r, i);
          worst = std::fmax(worst, std::fabs(got[r * ldy + i] - want[r * ldy + i]) / (scale + gmax * shift / kLayerNormRel));
        }
      }
    }
  }
  // In place (y = x), as documented.
  std::vector<float> x(64), y(64), gamma(64, 1.f), beta(64, 0.f);
  for (float& v : x) v = normal(rng);
  y = x;
  ks.layernorm(x.data(), 1, 64, 64, gamma.data(), beta.data(), 1e-5f, x.data(), 64);
  ref.layernorm(y.data(), 1, 64, 64, gamma.data(), beta.data(), 1e-5f, y.data(), 64);
  for (size_t i = 0; i < 64; ++i) t.check_close(x[i], y[i], 1e-5, "%s in place col %zu", ks.layernorm_name, i);
  std::printf("  %s: max error / output scale %.3g\n", ks.layernorm_name, worst);
}

// ---- The extremes of float32 (README "Kernels at the extremes of float32") ---------------------------
// Every variant against the reference at magnitudes 1e20, 1e30, 3e38 and -3e38, with mixed signs, one
// huge entry over unit ones, and NaN / +Inf / -Inf in one joint, one row or one key only, at sizes
// around the vector widths: NaN and +-Inf at exactly the reference's places (check_close), finite
// values within the tolerances above. The reference itself must give finite results for finite input.
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kFltMax = std::numeric_limits<float>::max();
const float kMagnitudes[] = {1e20f, 1e30f, 3e38f, -3e38f};

// x[i] = mag * N(0, 1) clamped to float's range; kind 1: |.|, 2: one entry at mag over N(0, 1) ones.
void fill_extreme(std::vector<float>& x, float mag, int kind, std::mt19937& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  for (float& v : x) {
    const double d = kind == 2 ? normal(rng) : normal(rng) * mag;
    v = static_cast<float>(std::fmax(-kFltMax, std::fmin(kFltMax, kind == 1 ? std::fabs(d) : d)));
  }
  if (kind == 2) x[std::uniform_int_distribution<size_t>(0, x.size() - 1)(rng)] = mag;
}

bool all_finite(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return false;
  }
  return true;
}

void test_softargmax_extremes(const KernelSet& ks, const KernelSet& ref, Test& t) {
  std::mt19937 rng(2024);
  const size_t widths[] = {1, 3, 7, 8, 9, 15, 16, 17, 33};
  const float specials[] = {kNaN, kInf, -kInf};
  for (int mode = 0; mode < kNumSoftArgmaxModes; ++mode) {
    const char* name = ks.softargmax3d_names[mode];
    for (size_t w : widths) {
      const size_t d = 2, h = 3, volume = d * h * w;
      for (float mag : kMagnitudes) {
        for (int kind = 0; kind < 3; ++kind) {
          for (int special = -3; special < 3; ++special) {  // < 0: none, all -inf, all -inf but one bin
            std::vector<float> x(volume);
            fill_extreme(x, mag, kind, rng);
            const size_t at = std::uniform_int_distribution<size_t>(0, volume - 1)(rng);
            if (special >= 0) x[at] = specials[special];
            if (special == -2 || special == -1) {
              for (float& v : x) v = -kInf;
              if (special == -1) x[at] = mag;
            }
            float want[3], want_peak, got[3], got_peak;
            ref.softargmax3d[mode](x.data(), d, h, w, want, &want_peak);
            ks.softargmax3d[mode](x.data(), d, h, w, got, &got_peak);
            const bool finite_in = special == -3;
            t.check(!finite_in || (all_finite(want, 3) && std::isfinite(want_peak)),
                    "reference %d: finite logits (|x| ~ %g) must give finite results", mode, mag);
            const double extent[3] = {double(w), double(h), double(d)};
            for (int c = 0; c < 3; ++c) {
              t.check_close(got[c], want[c], kSoftArgmaxCoordAbs + kSoftArgmaxCoordRel * extent[c],
                            "%s extremes w=%zu |x|~%g kind %d special %d coord %d", name, w, mag, kind, special, c);
            }
            t.check_close(got_peak, want_peak, kSoftArgmaxPeakRel * std::fabs(want_peak) + 1e-12,
                          "%s extremes w=%zu |x|~%g kind %d special %d peak", name, w, mag, kind, special);
          }
        }
      }
    }
  }
  // The semantics, on the reference and the variant alike: NaN and +Inf give NaN in every mode; -Inf is
  // NaN in taylor, weight 0 in exact (and NaN for a volume of nothing else), weight 1/2 in clamped.
  for (int mode = 0; mode < kNumSoftArgmaxModes; ++mode) {
    for (const KernelSet* set : {&ref, &ks}) {
      for (int special = 0; special < 3; ++special) {
        std::vector<float> x(2 * 3 * 9, 0.5f);
        x[13] = specials[special];
        float xyz[3], peak;
        set->softargmax3d[mode](x.data(), 2, 3, 9, xyz, &peak);
        const bool nan = special < 2 || mode == int(SoftArgmaxMode::kTaylor);
        t.check(std::isnan(xyz[0]) == nan && std::isnan(peak) == nan && std::isnan(xyz[2]) == nan,
                "%s: %g in one bin must %s", set->softargmax3d_names[mode], x[13], nan ? "give NaN" : "stay finite");
      }
    }
  }
  // 3e38 in one bin of a taylor volume: the expectation is that bin's index (f = 4.6e76 against ~1s).
  std::vector<float> x(4 * 4 * 17, 0.f);
  x[(2 * 4 + 1) * 17 + 9] = 3e38f;
  float xyz[3], peak;
  ks.softargmax3d[int(SoftArgmaxMode::kTaylor)](x.data(), 4, 4, 17, xyz, &peak);
  t.check(std::fabs(xyz[0] - 9.f) < 1e-4f && std::fabs(xyz[1] - 1.f) < 1e-4f && std::fabs(xyz[2] - 2.f) < 1e-4f &&
              std::fabs(peak - 1.f) < 1e-6f,
          "%s: one bin at 3e38 must take all the mass, got (%g, %g, %g) peak %g",
          ks.softargmax3d_names[int(SoftArgmaxMode::kTaylor)], xyz[0], xyz[1], xyz[2], peak);
}

// Output tolerance of one attention row against the reference: kMqaRel * max|v| where the double logits'
// top two are further apart than the float logits' error (then the softmax is one-hot in every
// precision), else the whole hull of the values (a near-tie of logits of 1e20 is not float32's to
// resolve). dl: (dh + 4) * eps * max_j (sum_c |q_c k_jc| / sqrt(dh) * |F| (+ 2 |F| for 'add')).
double mqa_row_tol(const double* logits, const double* sabs, size_t len, double vmax) {
  double top = -INFINITY, second = -INFINITY, dl = 0.0;
  for (size_t j = 0; j < len; ++j) {
    if (logits[j] > top) {
      second = top;
      top = logits[j];
    } else if (logits[j] > second) {
      second = logits[j];
    }
    dl = std::fmax(dl, sabs[j]);
  }
  dl *= 2.0 * kFloatEps;
  const bool decisive = len == 1 || top - second > 4.0 * dl + 40.0;
  return vmax * (decisive ? kMqaRel : 2.0 + kMqaRel);
}

void test_mqa_extremes(const KernelSet& ks, const KernelSet& ref, Test& t) {
  std::mt19937 rng(77);
  std::normal_distribution<float> normal(0.f, 1.f);
  const float specials[] = {kNaN, kInf, -kInf};
  for (int prior = 0; prior < kNumPriorModes; ++prior) {
    for (size_t n : {1, 3, 5, 8, 9, 17}) {
      for (size_t dh : {1, 3, 4, 8, 16, 17}) {
        for (size_t heads : {1, 3}) {
          for (int causal = 0; causal < 2; ++causal) {
            for (int c = 0; c < 8; ++c) {  // 0-3: q, k, v, prior of magnitude mag; 4-7: a special in q/k/v row
              const float mag = kMagnitudes[(n + dh + c) % 4];
              const size_t rows = heads * n;
              std::vector<float> q(rows * dh), k(n * dh), v(n * dh), f(n * n);
              fill_extreme(q, c == 0 || c >= 4 ? mag : 1.f, c % 3, rng);
              fill_extreme(k, c == 1 ? mag : 1.f, 0, rng);
              fill_extreme(v, c == 2 ? mag : 1.f, 0, rng);
              for (float& x : f) x = prior == 1 ? 1.f + 0.5f * normal(rng) : normal(rng);
              if (c == 3 && prior != 0) f[(n * n) / 2] = mag;
              if (c >= 4) {  // one special value in one row of q (c 4), one key (5), one value (6, 7: two)
                std::vector<float>& a = c == 4 ? q : c == 5 ? k : v;
                const size_t row = std::uniform_int_distribution<size_t>(0, a.size() / dh - 1)(rng);
                a[row * dh + std::uniform_int_distribution<size_t>(0, dh - 1)(rng)] = specials[(n + c) % 3];
                if (c == 7) a[std::uniform_int_distribution<size_t>(0, a.size() - 1)(rng)] = specials[(n + c + 1) % 3];
              }
              std::vector<float> ft(n * (n + kMqaFactorPad)), want(rows * dh), got(rows * dh);
              std::vector<float> scratch(mqa_scratch_floats(n, dh));
              mqa_factor_transpose(f.data(), n, ft.data());
              ref.mqa[prior](q.data(), k.data(), v.data(), ft.data(), n, dh, 0, rows, causal, want.data(),
                             scratch.data());
              ks.mqa[prior](q.data(), k.data(), v.data(), ft.data(), n, dh, 0, rows, causal, got.data(),
                            scratch.data());
              if (c < 4) t.check(all_finite(want.data(), want.size()), "%s: finite inputs must give finite outputs",
                                 ref.mqa_names[prior]);
              double vmax = 0.0;
              for (float x : v) vmax = std::isfinite(x) ? std::fmax(vmax, std::fabs(x)) : vmax;
              std::vector<double> logits(n), sabs(n);
              bool ok = true;
              for (size_t r = 0; r < rows && ok; ++r) {
                const size_t i = r % n, len = causal ? i + 1 : n;
                for (size_t j = 0; j < len; ++j) {
                  double dot = 0.0, s = 0.0;
                  for (size_t ch = 0; ch < dh; ++ch) {
                    dot += double(q[r * dh + ch]) * k[j * dh + ch];
                    s += std::fabs(double(q[r * dh + ch]) * k[j * dh + ch]);
                  }
                  const double fv = prior == 0 ? 1.0 : f[i * n + j], sc = 1.0 / std::sqrt(double(dh));
                  logits[j] = prior == 1 ? dot * sc * fv : prior == 2 ? dot * sc + fv : dot * sc;
                  sabs[j] = (dh + 4) * (prior == 1 ? s * sc * std::fabs(fv) : prior == 2 ? s * sc + 2 * std::fabs(fv) : s * sc);
                  if (!std::isfinite(logits[j])) logits[j] = -INFINITY;
                }
                const double tol = mqa_row_tol(logits.data(), sabs.data(), len, vmax);
                for (size_t ch = 0; ch < dh && ok; ++ch) {
                  ok = t.check_close(got[r * dh + ch], want[r * dh + ch], tol,
                                     "%s extremes n=%zu dh=%zu heads=%zu causal=%d case %d |.|~%g row %zu ch %zu",
                                     ks.mqa_names[prior], n, dh, heads, causal, c, mag, r, ch);
                }
              }
              // The same through the PRM-layout kernel (packed layout: q rows token-major).
              std::vector<float> qr(rows * dh), fr(n * (rows + kMqaFactorPad)), want_r(rows * dh), got_r(rows * dh);
              for (size_t r = 0; r < rows; ++r) {
                const size_t h = r / n, i = r % n;
                for (size_t ch = 0; ch < dh; ++ch) qr[(i * heads + h) * dh + ch] = q[r * dh + ch];
              }
              mqa_rows_factor(f.data(), n, heads, fr.data());
              ref.mqa_rows[prior](qr.data(), heads * dh, k.data(), v.data(), dh, fr.data(), n, heads, dh, 0, rows,
                                  causal, want_r.data(), heads * dh, scratch.data());
              ks.mqa_rows[prior](qr.data(), heads * dh, k.data(), v.data(), dh, fr.data(), n, heads, dh, 0, rows,
                                 causal, got_r.data(), heads * dh, scratch.data());
              ok = true;
              for (size_t i = 0; i < rows * dh && ok; ++i) {
                const size_t r = i / dh, tok = r / heads, h = r % heads;
                ok = t.check_close(want_r[i], want[(h * n + tok) * dh + i % dh], 0.0,
                                   "%s and %s: the references must agree", ref.mqa_rows_names[prior], ref.mqa_names[prior]);
                // The float logits differ between the two layouts' kernels only by base-2 rounding: the same
                // tolerance as above (the row's, recomputed cheaply as the hull or not from got vs want).
                const float g = got_r[i], w = want_r[i];
                ok = ok && t.check(std::isnan(g) == std::isnan(w) && (std::isinf(g) == std::isinf(w)) &&
                                       (!std::isinf(w) || g == w),
                                   "%s extremes n=%zu dh=%zu heads=%zu causal=%d case %d row %zu: NaN/Inf %g vs %g",
                                   ks.mqa_rows_names[prior], n, dh, heads, causal, c, r, g, w);
                if (ok && std::isfinite(w)) {
                  const double fast_err = std::fabs(double(got[(h * n + tok) * dh + i % dh]) - w);
                  ok = t.check(std::fabs(double(g) - w) <= fast_err + 2e-5 * vmax + 1e-30 ||
                                   std::fabs(double(g) - w) <= kMqaRel * vmax,
                               "%s extremes n=%zu dh=%zu case %d row %zu: error %g beyond the mqa kernel's %g",
                               ks.mqa_rows_names[prior], n, dh, c, r, std::fabs(double(g) - w), fast_err);
                }
              }
            }
          }
        }
      }
    }
  }
}

void test_linear_extremes(const KernelSet& ks, const KernelSet& ref, Test& t) {
  std::mt19937 rng(31);
  const float specials[] = {kNaN, kInf, -kInf};
  for (size_t m : {1, 5, 7}) {
    for (size_t k : {1, 3, 16, 17}) {
      for (size_t n : {1, 8, 15, 17, 33}) {
        for (int c = 0; c < 7; ++c) {  // 0: huge x, 1: huge weights, 2: huge bias, 3: huge residual, 4-6: specials
          const float mag = kMagnitudes[(m + k + n + c) % 4];
          const size_t ldx = k + 1, ldy = n + 2;
          std::vector<float> x(m * ldx), weight(n * k), bias(n);
          fill_extreme(x, c == 0 ? mag : 1.f, (k + c) % 3, rng);
          fill_extreme(weight, c == 1 ? mag : 1.f, 0, rng);
          fill_extreme(bias, c == 2 ? mag : 1.f, 0, rng);
          if (c >= 4) x[std::uniform_int_distribution<size_t>(0, m - 1)(rng) * ldx +
                        std::uniform_int_distribution<size_t>(0, k - 1)(rng)] = specials[c - 4];
          std::vector<float> packed(linear_packed_floats(n, k));
          linear_pack(weight.data(), bias.data(), n, k, packed.data());
          for (int e = 0; e < 3; ++e) {
            const auto epi = static_cast<LinearEpilogue>(e);
            std::vector<float> want(m * ldy), got(m * ldy);
            fill_extreme(want, c == 3 ? mag : 1.f, 0, rng);
            got = want;
            ref.linear(x.data(), m, k, ldx, packed.data(), n, want.data(), ldy, epi);
            ks.linear(x.data(), m, k, ldx, packed.data(), n, got.data(), ldy, epi);
            bool ok = true;
            for (size_t r = 0; r < m && ok; ++r) {
              for (size_t col = 0; col < n && ok; ++col) {
                double scale = std::fabs(bias[col]);
                for (size_t j = 0; j < k; ++j) scale += std::fabs(double(x[r * ldx + j]) * weight[col * k + j]);
                if (e == 2) scale += std::fabs(double(got[r * ldy + col]));
                const double tol = (scale + 1e-30) * (e == 1 ? kGeluRel : kLinearRel) * 4;
                ok = t.check_close(got[r * ldy + col], want[r * ldy + col], tol,
                                   "%s extremes epilogue %d m=%zu k=%zu n=%zu case %d |.|~%g row %zu col %zu",
                                   ks.linear_name, e, m, k, n, c, mag, r, col);
              }
            }
          }
        }
      }
    }
  }
  // GELU of huge and infinite arguments: the reference's (x for x >> 0, -0 for x << 0, NaN at -Inf).
  const float xs[] = {-3e38f, -1e20f, -1e10f, 1e10f, 1e20f, 3e38f, -kInf, kInf};
  check_gelu(ks, ref, t, xs, sizeof(xs) / sizeof(xs[0]));
}

void test_layernorm_extremes(const KernelSet& ks, const KernelSet& ref, Test& t) {
  std::mt19937 rng(41);
  const float specials[] = {kNaN, kInf, -kInf};
  for (size_t c : {1, 3, 8, 16, 17, 32, 64, 65}) {
    for (int cs = 0; cs < 6; ++cs) {  // 0: huge x, 1: huge x around a huge mean, 2: huge gamma, 3-5: specials
      const float mag = kMagnitudes[(c + cs) % 4];
      const size_t m = 5, ldx = c + 2, ldy = c + 1;
      std::vector<float> x(m * ldx), gamma(c), beta(c);
      fill_extreme(x, cs == 0 || cs >= 3 ? mag : 1.f, 0, rng);  // case 1: unit noise, scaled below
      if (cs == 1) {
        for (float& v : x) v = mag * (1.f + 1e-3f * v);
      }
      fill_extreme(gamma, cs == 2 ? mag : 1.f, 0, rng);
      fill_extreme(beta, 1.f, 0, rng);
      if (cs >= 3) x[2 * ldx + c / 2] = specials[cs - 3];
      for (float eps : {1e-5f, 0.f}) {
        std::vector<float> want(m * ldy, 9.f), got(m * ldy, 9.f);
        ref.layernorm(x.data(), m, c, ldx, gamma.data(), beta.data(), eps, want.data(), ldy);
        ks.layernorm(x.data(), m, c, ldx, gamma.data(), beta.data(), eps, got.data(), ldy);
        double gmax = 0.0;
        for (float g : gamma) gmax = std::fmax(gmax, std::fabs(g));
        bool ok = true;
        for (size_t r = 0; r < m && ok; ++r) {
          // As test_layernorm: relative to the output scale plus the float mean's rounding times rstd.
          const double shift = layernorm_shift(x.data() + r * ldx, c, eps);
          const double tol = gmax * (kLayerNormRel * (std::sqrt(double(c)) + 1.0) + shift) + 1e-6;
          for (size_t i = 0; i < c && ok; ++i) {
            ok = t.check_close(got[r * ldy + i], want[r * ldy + i], std::isfinite(tol) ? tol : 0.0,
                               "%s extremes c=%zu case %d |x|~%g eps=%g row %zu col %zu", ks.layernorm_name, c, cs,
                               mag, eps, r, i);
          }
          if (cs <= 1 && eps > 0.f) {
            t.check(all_finite(want.data() + r * ldy, c), "%s: finite rows must give finite outputs",
                    ref.layernorm_name);
          }
        }
      }
    }
  }
}

}  // namespace

void test_factor_transpose(Test& t) {
  const size_t n = 3;
  const float f[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};  // F[i][j] = 3i + j
  std::vector<float> ft(n * (n + kMqaFactorPad));
  mqa_factor_transpose(f, n, ft.data());
  bool ok = true;
  for (size_t j = 0; j < n; ++j) {
    for (size_t tt = 0; tt < n + kMqaFactorPad; ++tt) ok &= ft[j * (n + kMqaFactorPad) + tt] == f[(tt % n) * n + j];
  }
  t.check(ok, "mqa_factor_transpose: factor_t[j][t] must be F[t %% n][j]");
}

int main() {
  Test t;
  const KernelSet* ref = find_variant("reference");
  t.check(ref != nullptr, "reference variant missing");
  test_factor_transpose(t);
  for (const std::string& name : available_variants()) {
    const KernelSet* ks = find_variant(name);
    std::printf("variant %s\n", name.c_str());
    test_exp(*ks, t);
    if (name == "reference") continue;
    test_softargmax(*ks, *ref, t);
    test_mqa(*ks, *ref, t);
    test_mqa_rows(*ks, *ref, t);
    test_linear(*ks, *ref, t);
    test_layernorm(*ks, *ref, t);
    test_softargmax_extremes(*ks, *ref, t);
    test_mqa_extremes(*ks, *ref, t);
    test_linear_extremes(*ks, *ref, t);
    test_layernorm_extremes(*ks, *ref, t);
  }
  return t.finish("test_kernels");
}
