#include "mobpose/render.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace mobpose {

namespace {

// Inverse of a 3x3 row-major matrix; false when singular or not finite.
bool invert3(const float* m, double* inv) {
  const double a = m[0], b = m[1], c = m[2], d = m[3], e = m[4], f = m[5], g = m[6], h = m[7],
               k = m[8];
  const double c00 = e * k - f * h, c01 = f * g - d * k, c02 = d * h - e * g;
  const double det = a * c00 + b * c01 + c * c02;
  if (!std::isfinite(det) || std::fabs(det) < 1e-30) return false;
  const double r = 1.0 / det;
  inv[0] = c00 * r;
  inv[1] = (c * h - b * k) * r;
  inv[2] = (b * f - c * e) * r;
  inv[3] = c01 * r;
  inv[4] = (a * k - c * g) * r;
  inv[5] = (c * d - a * f) * r;
  inv[6] = c02 * r;
  inv[7] = (b * g - a * h) * r;
  inv[8] = (a * e - b * d) * r;
  for (int i = 0; i < 9; ++i) {
    if (!std::isfinite(inv[i])) return false;
  }
  return true;
}

}  // namespace

void render_spheres(const float* spheres, size_t count, const float* projection, size_t height,
                    size_t width, float* depth, float* normal, int32_t* index, float near_mm) {
  double inv[9];
  if (!invert3(projection, inv)) {
    throw std::invalid_argument("projection must be a finite invertible 3x3 matrix");
  }
  const size_t n = height * width;
  std::fill(depth, depth + n, std::numeric_limits<float>::infinity());
  std::fill(normal, normal + 3 * n, 0.0f);
  std::fill(index, index + n, -1);
  const float* p = projection;
  for (size_t s = 0; s < count; ++s) {
    const double cx = spheres[4 * s], cy = spheres[4 * s + 1], cz = spheres[4 * s + 2],
                 rad = spheres[4 * s + 3];
    if (!(std::isfinite(cx) && std::isfinite(cy) && std::isfinite(cz) && std::isfinite(rad)) ||
        !(rad > 0)) {
      throw std::invalid_argument("sphere " + std::to_string(s) +
                                  " must have a finite centre and a positive finite radius");
    }
    if (cz - rad < near_mm) continue;
    // Bounding box: the projected corners of the sphere's bounding cube (all in front of the camera).
    double u0 = 1e300, u1 = -1e300, v0 = 1e300, v1 = -1e300;
    for (int corner = 0; corner < 8; ++corner) {
      const double x = cx + ((corner & 1) ? rad : -rad), y = cy + ((corner & 2) ? rad : -rad),
                   z = cz + ((corner & 4) ? rad : -rad);
      const double hx = p[0] * x + p[1] * y + p[2] * z, hy = p[3] * x + p[4] * y + p[5] * z,
                   hz = p[6] * x + p[7] * y + p[8] * z;
      if (!(hz > 0)) {
        u0 = -1e300;  // behind the projection plane of a non-pinhole P: scan the whole image
        u1 = v1 = 1e300;
        v0 = -1e300;
        break;
      }
      u0 = std::min(u0, hx / hz);
      u1 = std::max(u1, hx / hz);
      v0 = std::min(v0, hy / hz);
      v1 = std::max(v1, hy / hz);
    }
    const long j0 = std::max(0L, static_cast<long>(std::floor(std::max(u0, -1.0))));
    const long j1 = std::min(static_cast<long>(width) - 1,
                             static_cast<long>(std::ceil(std::min(u1, 1e9))));
    const long i0 = std::max(0L, static_cast<long>(std::floor(std::max(v0, -1.0))));
    const long i1 = std::min(static_cast<long>(height) - 1,
                             static_cast<long>(std::ceil(std::min(v1, 1e9))));
    if (j0 > j1 || i0 > i1) continue;
    const double cc = cx * cx + cy * cy + cz * cz - rad * rad;
    const float inv_r = static_cast<float>(1.0 / rad);
    for (long i = i0; i <= i1; ++i) {
      // Ray through pixel (u, v): r = inv(P) (u, v, 1), scaled so r.z = 1 (then hit depth = t).
      const double by = inv[1] * i + inv[2], byy = inv[4] * i + inv[5], byz = inv[7] * i + inv[8];
      for (long j = j0; j <= j1; ++j) {
        const double rz = inv[6] * j + byz;
        if (!(rz > 0)) continue;
        const double rx = (inv[0] * j + by) / rz, ry = (inv[3] * j + byy) / rz;
        const double rr = rx * rx + ry * ry + 1.0;
        const double rc = rx * cx + ry * cy + cz;
        const double disc = rc * rc - rr * cc;
        if (disc < 0) continue;
        const double t = (rc - std::sqrt(disc)) / rr;
        const size_t o = static_cast<size_t>(i) * width + static_cast<size_t>(j);
        if (t >= depth[o] || t < near_mm) continue;
        depth[o] = static_cast<float>(t);
        normal[3 * o] = static_cast<float>(t * rx - cx) * inv_r;
        normal[3 * o + 1] = static_cast<float>(t * ry - cy) * inv_r;
        normal[3 * o + 2] = static_cast<float>(t - cz) * inv_r;
        index[o] = static_cast<int32_t>(s);
      }
    }
  }
}

}  // namespace mobpose
