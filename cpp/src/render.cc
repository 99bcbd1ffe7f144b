#include "mobpose/render.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

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

namespace {

void check_faces(const int32_t* faces, size_t num_faces, size_t num_vertices) {
  for (size_t f = 0; f < 3 * num_faces; ++f) {
    if (faces[f] < 0 || static_cast<size_t>(faces[f]) >= num_vertices) {
      throw std::invalid_argument("face " + std::to_string(f / 3) + " has vertex index " +
                                  std::to_string(faces[f]) + " outside 0.." +
                                  std::to_string(num_vertices - 1));
    }
  }
}

}  // namespace

void vertex_normals(const float* vertices, size_t num_vertices, const int32_t* faces, size_t num_faces,
                    float* normals) {
  check_faces(faces, num_faces, num_vertices);
  std::vector<double> acc(3 * num_vertices, 0.0);
  for (size_t f = 0; f < num_faces; ++f) {
    const float* a = vertices + 3 * faces[3 * f];
    const float* b = vertices + 3 * faces[3 * f + 1];
    const float* c = vertices + 3 * faces[3 * f + 2];
    const double e1[3] = {double(b[0]) - a[0], double(b[1]) - a[1], double(b[2]) - a[2]};
    const double e2[3] = {double(c[0]) - a[0], double(c[1]) - a[1], double(c[2]) - a[2]};
    const double n[3] = {e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2],
                         e1[0] * e2[1] - e1[1] * e2[0]};
    for (int k = 0; k < 3; ++k) {
      double* o = acc.data() + 3 * faces[3 * f + k];
      o[0] += n[0];
      o[1] += n[1];
      o[2] += n[2];
    }
  }
  for (size_t v = 0; v < num_vertices; ++v) {
    const double* o = acc.data() + 3 * v;
    const double len = std::sqrt(o[0] * o[0] + o[1] * o[1] + o[2] * o[2]);
    const double s = len > 0 ? 1.0 / len : 0.0;
    for (int k = 0; k < 3; ++k) normals[3 * v + k] = static_cast<float>(o[k] * s);
  }
}

void render_mesh(const float* vertices, const float* vertex_normals, size_t num_vertices,
                 const int32_t* faces, size_t num_faces, const float* projection, size_t height,
                 size_t width, float* depth, float* normal, int32_t* index, float near_mm) {
  double inv[9];
  if (!invert3(projection, inv)) {
    throw std::invalid_argument("projection must be a finite invertible 3x3 matrix");
  }
  const float* p = projection;
  // Per vertex: pixel (u, v) and 1 / Z; Z <= near marks the vertex unusable.
  std::vector<double> su(num_vertices), sv(num_vertices), sw(num_vertices);
  for (size_t k = 0; k < num_vertices; ++k) {
    const double x = vertices[3 * k], y = vertices[3 * k + 1], z = vertices[3 * k + 2];
    const float* nn = vertex_normals + 3 * k;
    if (!(std::isfinite(x) && std::isfinite(y) && std::isfinite(z) && std::isfinite(nn[0]) &&
          std::isfinite(nn[1]) && std::isfinite(nn[2]))) {
      throw std::invalid_argument("vertex " + std::to_string(k) + " or its normal is not finite");
    }
    const double hz = p[6] * x + p[7] * y + p[8] * z;
    if (!(z >= near_mm) || !(hz > 0)) {
      sw[k] = 0.0;
      continue;
    }
    su[k] = (p[0] * x + p[1] * y + p[2] * z) / hz;
    sv[k] = (p[3] * x + p[4] * y + p[5] * z) / hz;
    sw[k] = 1.0 / z;
  }
  check_faces(faces, num_faces, num_vertices);
  const size_t n = height * width;
  std::fill(depth, depth + n, std::numeric_limits<float>::infinity());
  std::fill(normal, normal + 3 * n, 0.0f);
  std::fill(index, index + n, -1);
  const double max_u = static_cast<double>(width) - 1, max_v = static_cast<double>(height) - 1;
  for (size_t f = 0; f < num_faces; ++f) {
    const int32_t a = faces[3 * f], b = faces[3 * f + 1], c = faces[3 * f + 2];
    if (sw[a] == 0.0 || sw[b] == 0.0 || sw[c] == 0.0) continue;
    const double ua = su[a], va = sv[a], ub = su[b], vb = sv[b], uc = su[c], vc = sv[c];
    const double area = (ub - ua) * (vc - va) - (vb - va) * (uc - ua);
    if (!(std::fabs(area) > 1e-12)) continue;  // degenerate on screen: covers no pixel centre
    const double lo_u = std::max(std::min({ua, ub, uc}), 0.0), hi_u = std::min(std::max({ua, ub, uc}), max_u);
    const double lo_v = std::max(std::min({va, vb, vc}), 0.0), hi_v = std::min(std::max({va, vb, vc}), max_v);
    if (lo_u > hi_u || lo_v > hi_v) continue;
    const long j0 = static_cast<long>(std::ceil(lo_u)), j1 = static_cast<long>(std::floor(hi_u));
    const long i0 = static_cast<long>(std::ceil(lo_v)), i1 = static_cast<long>(std::floor(hi_v));
    const double r = 1.0 / area;
    for (long i = i0; i <= i1; ++i) {
      for (long j = j0; j <= j1; ++j) {
        // Screen-space barycentrics (the sign of the area makes both windings positive inside).
        const double l0 = ((ub - j) * (vc - i) - (vb - i) * (uc - j)) * r;
        const double l1 = ((uc - j) * (va - i) - (vc - i) * (ua - j)) * r;
        const double l2 = 1.0 - l0 - l1;
        if (l0 < 0 || l1 < 0 || l2 < 0) continue;
        // Perspective-correct weights: screen barycentrics divided by Z, renormalised.
        const double w0 = l0 * sw[a], w1 = l1 * sw[b], w2 = l2 * sw[c];
        const double zi = 1.0 / (w0 + w1 + w2);
        const size_t o = static_cast<size_t>(i) * width + static_cast<size_t>(j);
        if (!(zi < depth[o])) continue;
        const double q0 = w0 * zi, q1 = w1 * zi, q2 = w2 * zi;
        double nx = q0 * vertex_normals[3 * a] + q1 * vertex_normals[3 * b] + q2 * vertex_normals[3 * c];
        double ny = q0 * vertex_normals[3 * a + 1] + q1 * vertex_normals[3 * b + 1] +
                    q2 * vertex_normals[3 * c + 1];
        double nz = q0 * vertex_normals[3 * a + 2] + q1 * vertex_normals[3 * b + 2] +
                    q2 * vertex_normals[3 * c + 2];
        // The surface point X = zi * ray; a normal pointing away from the camera (n . X > 0) is flipped.
        const double px = q0 * vertices[3 * a] + q1 * vertices[3 * b] + q2 * vertices[3 * c];
        const double py = q0 * vertices[3 * a + 1] + q1 * vertices[3 * b + 1] + q2 * vertices[3 * c + 1];
        const double len = std::sqrt(nx * nx + ny * ny + nz * nz);
        const double sgn = (nx * px + ny * py + nz * zi > 0) ? -1.0 : 1.0;
        const double s = len > 1e-12 ? sgn / len : 0.0;
        depth[o] = static_cast<float>(zi);
        normal[3 * o] = static_cast<float>(nx * s);
        normal[3 * o + 1] = static_cast<float>(ny * s);
        normal[3 * o + 2] = static_cast<float>(nz * s);
        index[o] = static_cast<int32_t>(f);
      }
    }
  }
}

}  // namespace mobpose
