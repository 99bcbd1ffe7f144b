// A small reader of .safetensors files: the header, the string metadata and float tensors.
//
// Layout: 8 bytes, the header length N (unsigned 64-bit, little-endian); N bytes of JSON, an object
// mapping each tensor name to {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} (byte
// offsets into the data that follows the header) plus an optional "__metadata__" object of string
// values; then the tensor bytes (little-endian, C order).
//
// The header is parsed and checked when the file is opened; tensors are read on request. Every
// problem with the file (missing or unreadable, truncated, header length past the end, invalid JSON,
// an entry without dtype, shape or offsets, offsets past the data or not matching the shape, a tensor
// of another dtype than asked for, a missing tensor) throws std::runtime_error whose message starts
// with the file's path and names the problem.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mobpose {

struct SafetensorsTensor {
  std::string dtype;           // "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;  // empty for a scalar
  uint64_t begin = 0;          // byte range in the data section
  uint64_t end = 0;

  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Reads and checks the header of `path`.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return path_; }
  // The "__metadata__" map (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Every tensor entry by name.
  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // The entry of `name`; throws std::runtime_error naming the file and the tensor if there is none.
  const SafetensorsTensor& tensor(const std::string& name) const;

  // The values of a float tensor as float32, in C order: F32 as stored, F16 and BF16 widened (exact).
  // Throws std::runtime_error (naming the file and the tensor) for a missing tensor, another dtype,
  // or a file that became shorter than its header says.
  std::vector<float> read_floats(const std::string& name) const;
  // The same, after checking that the tensor's shape is `shape` (the message gives both shapes).
  std::vector<float> read_floats(const std::string& name, const std::vector<int64_t>& shape) const;

 private:
  std::string path_;
  uint64_t data_start_ = 0;  // file offset of the data section
  uint64_t data_size_ = 0;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, SafetensorsTensor> tensors_;
};

// The scalar members of a JSON object (a metadata value such as a model's config, written by Python's json.dumps)
// as text: strings decoded, integers and booleans as written ("64", "true"), reals with 17 digits, null as "null";
// arrays and nested objects are left out. Throws std::runtime_error naming `where` for text that is not a JSON
// object.
std::map<std::string, std::string> json_scalars(const std::string& text, const std::string& where);

// "(2, 3)", "()" for a scalar: shapes in error messages, as Python writes tuples.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace mobpose
