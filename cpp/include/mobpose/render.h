// Rasterisers for the synthetic image engine (mobpose.data.synthetic). Sphere bodies are unions of
// spheres in camera space (render_spheres finds, for every pixel, the nearest sphere surface along the
// pixel's ray); mesh bodies are triangle meshes (render_mesh, a z-buffer rasteriser with
// perspective-correct interpolation). Plain C++, single-threaded (they run inside data-loader workers).
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

// vertices: (num_vertices, 3) camera-space points (mm, Z forward); vertex_normals: (num_vertices, 3)
//   (need not be unit length; the interpolated normal is normalised); faces: (num_faces, 3) vertex rows.
// projection: as for render_spheres, with a last row that gives the camera Z of a point (0 0 1 for K or
//   A * K): a vertex's pixel is (P X)_xy / Z.
// Pixel (i, j) is covered by a triangle when its centre (u = j, v = i) is inside or on the projected
// triangle (either winding: no back-face culling; the depth test resolves self-occlusion). Outputs over
// height x width pixels: depth = camera Z of the nearest covering surface point (+inf where none),
// normal = the perspective-correct interpolation of the vertex normals, unit length and turned towards
// the camera (0 where none), index = face row (-1 where none).
// Faces with a vertex closer than `near_mm` to the camera plane are skipped (no clipping).
// Throws std::invalid_argument on a bad projection, a non-finite vertex or normal, or a face index out
// of range.
// Unit vertex normals (num_vertices, 3) of a triangle mesh: the sum of the adjacent faces' cross products
// (area-weighted, oriented by the winding), normalised; 0 for a vertex no face uses. Throws
// std::invalid_argument on a face index out of range.
void vertex_normals(const float* vertices, size_t num_vertices, const int32_t* faces, size_t num_faces,
                    float* normals);

void render_mesh(const float* vertices, const float* vertex_normals, size_t num_vertices,
                 const int32_t* faces, size_t num_faces, const float* projection, size_t height,
                 size_t width, float* depth, float* normal, int32_t* index, float near_mm = 10.0f);

}  // namespace mobpose
