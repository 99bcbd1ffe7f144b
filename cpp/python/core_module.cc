// mobpose._core: the thin binding over cpp/ops.h. Inputs are taken without copying when they are
// C-contiguous float32 CPU arrays (numpy, or anything with DLPack such as torch tensors); anything
// else raises (TypeError for the dtype, ValueError for rank, shape, layout and emptiness), naming the
// argument. Outputs are new numpy arrays. The GIL is released while the kernels run.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "mobpose/kernels.h"
#include "mobpose/ops.h"
#include "mobpose/prm.h"
#include "mobpose/render.h"
#include "mobpose/safetensors.h"
#include "mobpose/thread_pool.h"

namespace nb = nanobind;

namespace {

using InArray = nb::ndarray<nb::ro>;
using OutArray = nb::ndarray<nb::numpy, float>;

std::string shape_str(const InArray& a) {
  std::string s = "(";
  for (size_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Checks dtype, device, rank, layout and emptiness; returns the data pointer.
template <typename T = float>
const T* checked(const InArray& a, const char* name, size_t ndim, const char* dims) {
  if (a.dtype() != nb::dtype<T>()) {
    const std::string t = std::is_same_v<T, float> ? "float32" : "int32";
    throw nb::type_error((std::string(name) + " must be " + t + " (convert with " +
                          "np.ascontiguousarray(x, dtype=np." + t + "))").c_str());
  }
  if (a.device_type() != nb::device::cpu::value) {
    throw nb::value_error((std::string(name) + " must be on the CPU").c_str());
  }
  if (a.ndim() != ndim) {
    throw nb::value_error((std::string(name) + " must have " + std::to_string(ndim) +
                           " dimensions " + dims + ", got shape " + shape_str(a))
                              .c_str());
  }
  for (size_t i = 0; i < a.ndim(); ++i) {
    if (a.shape(i) == 0) {
      throw nb::value_error((std::string(name) + " is empty: shape " + shape_str(a)).c_str());
    }
  }
  int64_t expect = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expect) {
      throw nb::value_error((std::string(name) + " must be C-contiguous (use " +
                             "np.ascontiguousarray)")
                                .c_str());
    }
    expect *= static_cast<int64_t>(a.shape(i));
  }
  return static_cast<const T*>(a.data());
}

OutArray new_array(std::initializer_list<size_t> shape) {
  size_t total = 1;
  for (size_t s : shape) total *= s;
  float* data = new float[total];
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<float*>(p); });
  return OutArray(data, shape.size(), shape.begin(), owner);
}

std::pair<OutArray, OutArray> soft_argmax_3d(const InArray& heatmaps, const std::string& mode,
                                             int num_threads) {
  const auto m = mobpose::parse_softargmax_mode(mode);
  const float* x = checked(heatmaps, "heatmaps", 5, "(N, J, D, H, W)");
  const size_t n = heatmaps.shape(0), j = heatmaps.shape(1);
  OutArray xyz = new_array({n, j, 3});
  OutArray peak = new_array({n, j});
  {
    nb::gil_scoped_release release;
    mobpose::soft_argmax_3d(x, n, j, heatmaps.shape(2), heatmaps.shape(3), heatmaps.shape(4), m,
                            xyz.data(), peak.data(), num_threads);
  }
  return {xyz, peak};
}

OutArray mqa_prior(const InArray& q, const InArray& k, const InArray& v,
                   const std::optional<InArray>& prior, float prior_scale,
                   const std::string& prior_mode, bool causal, int num_threads) {
  const auto mode = mobpose::parse_prior_mode(prior_mode);
  const float* qp = checked(q, "q", 4, "(B, H, N, d)");
  const float* kp = checked(k, "k", 3, "(B, N, d)");
  const float* vp = checked(v, "v", 3, "(B, N, d)");
  const size_t b = q.shape(0), h = q.shape(1), n = q.shape(2), d = q.shape(3);
  for (const auto& [arr, name] : {std::pair<const InArray*, const char*>{&k, "k"}, {&v, "v"}}) {
    if (arr->shape(0) != b || arr->shape(1) != n || arr->shape(2) != d) {
      throw nb::value_error((std::string(name) + " must have shape (B, N, d) = (" +
                             std::to_string(b) + ", " + std::to_string(n) + ", " +
                             std::to_string(d) + ") to match q " + shape_str(q) + ", got " +
                             shape_str(*arr))
                                .c_str());
    }
  }
  const float* pp = nullptr;
  if (prior) {
    pp = checked(*prior, "prior", 2, "(N, N)");
    if (prior->shape(0) != n || prior->shape(1) != n) {
      throw nb::value_error(("prior must have shape (N, N) = (" + std::to_string(n) + ", " +
                             std::to_string(n) + "), got " + shape_str(*prior))
                                .c_str());
    }
  }
  OutArray out = new_array({b, h, n, d});
  {
    nb::gil_scoped_release release;
    mobpose::mqa_prior(qp, kp, vp, pp, prior_scale, mode, b, h, n, d, causal, out.data(),
                       num_threads);
  }
  return out;
}

// The projection and image size checks and the output maps shared by the rasterisers; `draw` fills them
// (GIL released); invalid_argument from it becomes ValueError.
template <typename Draw>
nb::tuple rasterise(const InArray& projection, int64_t height, int64_t width, Draw draw) {
  const float* pp = checked(projection, "projection", 2, "(3, 3)");
  if (projection.shape(0) != 3 || projection.shape(1) != 3) {
    throw nb::value_error(("projection must have shape (3, 3), got " + shape_str(projection)).c_str());
  }
  if (height < 1 || width < 1 || height > 16384 || width > 16384) {
    throw nb::value_error(("image size must be within 1..16384 pixels, got " +
                           std::to_string(height) + "x" + std::to_string(width)).c_str());
  }
  const size_t h = static_cast<size_t>(height), w = static_cast<size_t>(width);
  OutArray depth = new_array({h, w});
  OutArray normal = new_array({h, w, 3});
  int32_t* idx = new int32_t[h * w];
  nb::capsule owner(idx, [](void* q) noexcept { delete[] static_cast<int32_t*>(q); });
  nb::ndarray<nb::numpy, int32_t> index(idx, {h, w}, owner);
  try {
    nb::gil_scoped_release release;
    draw(pp, h, w, depth.data(), normal.data(), idx);
  } catch (const std::invalid_argument& e) {
    throw nb::value_error(e.what());
  }
  return nb::make_tuple(depth, normal, index);
}

nb::tuple render_spheres(const InArray& spheres, const InArray& projection, int64_t height,
                         int64_t width, float near_mm) {
  const float* sp = checked(spheres, "spheres", 2, "(S, 4)");
  if (spheres.shape(1) != 4) {
    throw nb::value_error(("spheres must have shape (S, 4) (x, y, z, radius), got " +
                           shape_str(spheres)).c_str());
  }
  const size_t count = spheres.shape(0);
  return rasterise(projection, height, width,
                   [&](const float* pp, size_t h, size_t w, float* depth, float* normal, int32_t* idx) {
                     mobpose::render_spheres(sp, count, pp, h, w, depth, normal, idx, near_mm);
                   });
}

nb::tuple render_mesh(const InArray& vertices, const InArray& vertex_normals, const InArray& faces,
                      const InArray& projection, int64_t height, int64_t width, float near_mm) {
  const float* v = checked(vertices, "vertices", 2, "(V, 3)");
  const float* vn = checked(vertex_normals, "vertex_normals", 2, "(V, 3)");
  const int32_t* f = checked<int32_t>(faces, "faces", 2, "(F, 3)");
  if (vertices.shape(1) != 3 || vertex_normals.shape(0) != vertices.shape(0) || vertex_normals.shape(1) != 3) {
    throw nb::value_error(("vertices and vertex_normals must both have shape (V, 3), got " +
                           shape_str(vertices) + " and " + shape_str(vertex_normals)).c_str());
  }
  if (faces.shape(1) != 3) {
    throw nb::value_error(("faces must have shape (F, 3) (triangles), got " + shape_str(faces)).c_str());
  }
  const size_t nv = vertices.shape(0), nf = faces.shape(0);
  return rasterise(projection, height, width,
                   [&](const float* pp, size_t h, size_t w, float* depth, float* normal, int32_t* idx) {
                     mobpose::render_mesh(v, vn, nv, f, nf, pp, h, w, depth, normal, idx, near_mm);
                   });
}

OutArray vertex_normals(const InArray& vertices, const InArray& faces) {
  const float* v = checked(vertices, "vertices", 2, "(V, 3)");
  const int32_t* f = checked<int32_t>(faces, "faces", 2, "(F, 3)");
  if (vertices.shape(1) != 3 || faces.shape(1) != 3) {
    throw nb::value_error(("vertices and faces must have shapes (V, 3) and (F, 3), got " + shape_str(vertices) +
                           " and " + shape_str(faces)).c_str());
  }
  OutArray out = new_array({vertices.shape(0), 3});
  try {
    nb::gil_scoped_release release;
    mobpose::vertex_normals(v, vertices.shape(0), f, faces.shape(0), out.data());
  } catch (const std::invalid_argument& e) {
    throw nb::value_error(e.what());
  }
  return out;
}

// The native PRM. Arrays in and out are float32 mm; the GIL is released while it computes (the object
// serialises its own calls).
void init_prm(mobpose::PRMNative* self, const std::string& path, int64_t num_joints, int64_t num_frames,
              int64_t dim, int64_t heads, const std::string& blocks, double mlp_ratio, const std::string& prior,
              double lam, bool learn_adj, bool causal, double input_scale, const std::string& prefix,
              int num_threads) {
  mobpose::PRMNativeConfig c;
  c.num_joints = num_joints;
  c.num_frames = num_frames;
  c.dim = dim;
  c.heads = heads;
  c.blocks = blocks;
  c.mlp_ratio = mlp_ratio;
  c.prior = prior;
  c.lam = lam;
  c.learn_adj = learn_adj;
  c.causal = causal;
  c.input_scale = input_scale;
  nb::gil_scoped_release release;
  new (self) mobpose::PRMNative(path, c, prefix, num_threads);
}

OutArray prm_forward(mobpose::PRMNative& prm, const InArray& window) {
  const auto& c = prm.config();
  if (window.ndim() == 4) {
    const float* w = checked(window, "window", 4, "(B, T, J, 3)");
    OutArray out = new_array({window.shape(0), window.shape(1), window.shape(2), window.shape(3)});
    nb::gil_scoped_release release;
    prm.forward_batch(w, window.shape(0), window.shape(1), window.shape(2), window.shape(3), out.data());
    return out;
  }
  const float* w = checked(window, "window", 3, ("(T, J, 3) = (" + std::to_string(c.num_frames) + ", " +
                                                 std::to_string(c.num_joints) + ", 3)").c_str());
  OutArray out = new_array({window.shape(0), window.shape(1), window.shape(2)});
  nb::gil_scoped_release release;
  prm.forward(w, window.shape(0), window.shape(1), window.shape(2), out.data());
  return out;
}

OutArray prm_step(mobpose::PRMNative& prm, const InArray& pose) {
  const auto& c = prm.config();
  const float* p = checked(pose, "pose", 2, ("(J, 3) = (" + std::to_string(c.num_joints) + ", 3)").c_str());
  OutArray out = new_array({pose.shape(0), pose.shape(1)});
  nb::gil_scoped_release release;
  prm.step(p, pose.shape(0), pose.shape(1), out.data());
  return out;
}

void set_kernel_variant(const std::string& name) {
  if (!mobpose::kernels::set_variant(name)) {
    std::string valid = "auto";
    for (const auto& v : mobpose::kernels::available_variants()) valid += ", " + v;
    throw nb::value_error(("unknown or unsupported kernel variant '" + name +
                           "'; available here: " + valid)
                              .c_str());
  }
}

nb::dict kernel_names() {
  const auto& ks = mobpose::kernels::active_kernels();
  nb::dict d;
  const char* sa[] = {"softargmax3d_exact", "softargmax3d_taylor", "softargmax3d_taylor_clamped"};
  const char* mq[] = {"mqa_noprior", "mqa_mulprior", "mqa_addprior"};
  const char* mr[] = {"mqarows_noprior", "mqarows_mulprior", "mqarows_addprior"};
  for (int i = 0; i < 3; ++i) d[sa[i]] = ks.softargmax3d_names[i];
  for (int i = 0; i < 3; ++i) d[mq[i]] = ks.mqa_names[i];
  for (int i = 0; i < 3; ++i) d[mr[i]] = ks.mqa_rows_names[i];
  d["exp"] = ks.exp_name;
  d["linear"] = ks.linear_name;
  d["layernorm"] = ks.layernorm_name;
  return d;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "mobpose C++ kernels: soft-argmax over 3D heatmaps and multi-query attention with prior.";
  m.def("soft_argmax_3d", &soft_argmax_3d, nb::arg("heatmaps"), nb::arg("mode") = "taylor",
        nb::arg("num_threads") = 1,
        "Soft-argmax of (N, J, D, H, W) float32 heatmaps -> (xyz (N, J, 3), peak (N, J)).");
  m.def("mqa_prior", &mqa_prior, nb::arg("q"), nb::arg("k"), nb::arg("v"),
        nb::arg("prior") = nb::none(), nb::arg("prior_scale") = 1.0f, nb::arg("prior_mode") = "mul",
        nb::arg("causal") = false, nb::arg("num_threads") = 1,
        "Multi-query attention with a structural prior -> (B, H, N, d) float32.");
  m.def("render_spheres", &render_spheres, nb::arg("spheres"), nb::arg("projection"),
        nb::arg("height"), nb::arg("width"), nb::arg("near_mm") = 10.0f,
        "Nearest-surface rasterisation of camera-space spheres (S, 4) through a 3x3 projection ->\n"
        "(depth (H, W) float32, +inf empty; normal (H, W, 3) float32; index (H, W) int32, -1 empty).");
  m.def("vertex_normals", &vertex_normals, nb::arg("vertices"), nb::arg("faces"),
        "Unit vertex normals (V, 3) float32 of a triangle mesh (vertices (V, 3) float32, faces (F, 3) int32):\n"
        "the area-weighted sum of the adjacent faces' normals, oriented by the winding.");
  m.def("render_mesh", &render_mesh, nb::arg("vertices"), nb::arg("vertex_normals"), nb::arg("faces"),
        nb::arg("projection"), nb::arg("height"), nb::arg("width"), nb::arg("near_mm") = 10.0f,
        "Z-buffer rasterisation of a camera-space triangle mesh (vertices, vertex_normals (V, 3) float32,\n"
        "faces (F, 3) int32) through a 3x3 projection -> (depth (H, W) float32, +inf empty; normal\n"
        "(H, W, 3) float32, interpolated, towards the camera; index (H, W) int32 face row, -1 empty).");
  m.def("set_kernel_variant", &set_kernel_variant, nb::arg("name"),
        "Select the kernel variant ('auto', 'reference', 'avx2', 'avx512', 'neon').");
  m.def("kernel_variant", [] { return std::string(mobpose::kernels::active_kernels().variant); },
        "Name of the kernel variant in use.");
  m.def("available_kernel_variants", &mobpose::kernels::available_variants,
        "Variants compiled in and supported by this CPU, reference first, best last.");
  m.def("kernel_names", &kernel_names, "Names of the kernels the active variant runs.");
  m.def("hardware_threads", &mobpose::hardware_threads, "Hardware threads of this machine.");
  m.def("read_safetensors_metadata",
        [](const std::string& path) {
          nb::gil_scoped_release release;
          return mobpose::SafetensorsFile(path).metadata();
        },
        nb::arg("path"), "The string metadata ('__metadata__') of a .safetensors file (the header is checked).");

  nb::class_<mobpose::PRMNative>(m, "PRMNative",
                                 "The PRM in C++ from a .safetensors file: forward over windows, step for streams.")
      .def("__init__", &init_prm,
           nb::arg("path"), nb::arg("num_joints"), nb::arg("num_frames"), nb::arg("dim"), nb::arg("heads"),
           nb::arg("blocks"), nb::arg("mlp_ratio"), nb::arg("prior"), nb::arg("lam"), nb::arg("learn_adj"),
           nb::arg("causal"), nb::arg("input_scale"), nb::arg("prefix") = "", nb::arg("num_threads") = 1)
      .def("forward", &prm_forward, nb::arg("window"),
           "(T, J, 3) float32 mm -> refined (T, J, 3); also (B, T, J, 3) -> (B, T, J, 3).")
      .def("step", &prm_step, nb::arg("pose"), "The newest frame (J, 3) float32 mm -> its refined pose (J, 3).")
      .def("reset", &mobpose::PRMNative::reset, "Start a new stream.")
      .def_prop_ro("num_frames", [](const mobpose::PRMNative& p) { return p.config().num_frames; })
      .def_prop_ro("num_joints", [](const mobpose::PRMNative& p) { return p.config().num_joints; })
      .def_prop_ro("causal", [](const mobpose::PRMNative& p) { return p.config().causal; })
      .def_prop_ro("frames_seen", &mobpose::PRMNative::frames_seen)
      .def_prop_ro("kernel", [](const mobpose::PRMNative& p) { return std::string(p.kernel_name()); });
}
