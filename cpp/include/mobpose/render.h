// Sphere rasteriser for the synthetic image engine (mobpose.data.synthetic): bodies are unions of
// spheres in camera space; this finds, for every pixel, the nearest sphere surface along the pixel's
// ray. Plain C++, single-threaded (it runs inside data-loader workers).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mobpose {

// spheres: (count, 4) rows of x, y, z, radius in camera space (mm, Z forward, radius > 0).
// projection: 3x3 row-major matrix P mapping a camera-space point X to homogeneous pixel coordinates
//   P * X (the intrinsics K, or A * K for a crop/rotation affine A with last row 0 0 1). Pixel (i, j)
//   is the integer point u = j, v = i (pixel centres at integers, as mobpose.camera.project).
// Outputs over height x width pixels: depth = camera Z of the nearest hit (+inf where none),
//   normal = unit outward surface normal (x, y, z) (0 where none), index = sphere row (-1 where none).
// Spheres that reach closer than `near_mm` to the camera plane are skipped.
// Throws std::invalid_argument on a singular or non-finite projection or a bad sphere.
void render_spheres(const float* spheres, size_t count, const float* projection, size_t height,
                    size_t width, float* depth, float* normal, int32_t* index, float near_mm = 10.0f);

}  // namespace mobpose
