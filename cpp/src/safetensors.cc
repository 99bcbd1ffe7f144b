#include "mobpose/safetensors.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <utility>

namespace mobpose {
namespace {

// The safetensors library refuses headers above 100 MB; so does this reader (a corrupt length field
// must not make it allocate gigabytes).
constexpr uint64_t kMaxHeader = 100u << 20;
constexpr int kMaxDepth = 64;  // JSON nesting; a safetensors header needs 3

// ---- A minimal JSON parser: what a safetensors header holds ----------------------------------------

struct Json {
  enum Kind { kNull, kBool, kInt, kReal, kString, kArray, kObject };
  Kind kind = kNull;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string string;
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;  // in file order
};

const char* kind_name(Json::Kind k) {
  switch (k) {
    case Json::kNull: return "null";
    case Json::kBool: return "a boolean";
    case Json::kInt: return "an integer";
    case Json::kReal: return "a real number";
    case Json::kString: return "a string";
    case Json::kArray: return "an array";
    case Json::kObject: return "an object";
  }
  return "?";
}

class JsonParser {
 public:
  JsonParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  Json parse_document() {
    Json v = value(0);
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(path_ + ": invalid safetensors header: " + what + " (at byte " +
                             std::to_string(pos_) + " of the JSON header)");
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  char peek() {
    skip_space();
    if (pos_ >= s_.size()) fail("unexpected end of the header");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  bool literal(const char* word) {
    const size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Json value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    const char c = peek();
    Json v;
    if (c == '{') {
      v.kind = Json::kObject;
      ++pos_;
      if (peek() == '}') {
        ++pos_;
        return v;
      }
      for (;;) {
        if (peek() != '"') fail("expected a string key");
        std::string key = string();
        for (const auto& kv : v.object) {
          if (kv.first == key) fail("duplicate key \"" + key + "\"");
        }
        expect(':');
        v.object.emplace_back(std::move(key), value(depth + 1));
        const char d = peek();
        ++pos_;
        if (d == '}') return v;
        if (d != ',') fail("expected ',' or '}' in an object");
      }
    }
    if (c == '[') {
      v.kind = Json::kArray;
      ++pos_;
      if (peek() == ']') {
        ++pos_;
        return v;
      }
      for (;;) {
        v.array.push_back(value(depth + 1));
        const char d = peek();
        ++pos_;
        if (d == ']') return v;
        if (d != ',') fail("expected ',' or ']' in an array");
      }
    }
    if (c == '"') {
      v.kind = Json::kString;
      v.string = string();
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    if (literal("true")) {
      v.kind = Json::kBool;
      v.boolean = true;
      return v;
    }
    if (literal("false")) {
      v.kind = Json::kBool;
      return v;
    }
    if (literal("null")) return v;
    fail(std::string("unexpected character '") + c + "'");
  }

  // Integers exactly (int64, overflow is an error); anything with a fraction or exponent as double.
  Json number() {
    const size_t start = pos_;
    bool negative = false;
    if (s_[pos_] == '-') {
      negative = true;
      ++pos_;
    }
    if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') fail("invalid number");
    if (s_[pos_] == '0' && pos_ + 1 < s_.size() && s_[pos_ + 1] >= '0' && s_[pos_ + 1] <= '9') {
      fail("invalid number (leading zero)");
    }
    uint64_t magnitude = 0;
    bool overflow = false;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      const uint64_t digit = static_cast<uint64_t>(s_[pos_] - '0');
      if (magnitude > (std::numeric_limits<uint64_t>::max() - digit) / 10) overflow = true;
      magnitude = magnitude * 10 + digit;
      ++pos_;
    }
    bool real = false;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      real = true;
      ++pos_;
      if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') fail("invalid number");
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      real = true;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') fail("invalid number");
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    }
    Json v;
    if (real) {
      v.kind = Json::kReal;
      v.real = std::strtod(s_.substr(start, pos_ - start).c_str(), nullptr);
      return v;
    }
    const uint64_t limit = negative ? uint64_t{1} << 63 : static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (overflow || magnitude > limit) fail("integer out of the 64-bit range");
    v.kind = Json::kInt;
    v.integer = negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
    return v;
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned u = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      u <<= 4;
      if (h >= '0' && h <= '9') {
        u |= static_cast<unsigned>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        u |= static_cast<unsigned>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        u |= static_cast<unsigned>(h - 'A' + 10);
      } else {
        fail("invalid \\u escape");
      }
    }
    return u;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // A string at pos_ (which is '"'), with its escapes decoded (\uXXXX, surrogate pairs, to UTF-8).
  std::string string() {
    ++pos_;
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (pos_ + 2 > s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') fail("unpaired surrogate in \\u escape");
            pos_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("invalid surrogate pair in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("unpaired surrogate in \\u escape");
          }
          append_utf8(out, cp);
          break;
        }
        default:
          fail(std::string("invalid escape '\\") + e + "'");
      }
    }
  }

  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;
};

// ---- Header checks ---------------------------------------------------------------------------------

size_t dtype_size(const std::string& dtype) {
  static const std::pair<const char*, size_t> kSizes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},     {"I16", 2},
      {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},  {"BOOL", 1},    {"F8_E4M3", 1},
      {"F8_E5M2", 1}};
  for (const auto& [name, size] : kSizes) {
    if (dtype == name) return size;
  }
  return 0;
}

// IEEE half and bfloat16 bits to float (every value is exact in float).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // Inf, NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // +-0
  } else {  // subnormal half: normalise
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

bool little_endian() {
  const uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

}  // namespace

std::map<std::string, std::string> json_scalars(const std::string& text, const std::string& where) {
  const Json doc = JsonParser(text, where).parse_document();
  if (doc.kind != Json::kObject)
    throw std::runtime_error(where + ": expected a JSON object, got " + kind_name(doc.kind));
  std::map<std::string, std::string> out;
  for (const auto& [key, v] : doc.object) {
    switch (v.kind) {
      case Json::kString: out[key] = v.string; break;
      case Json::kInt: out[key] = std::to_string(v.integer); break;
      case Json::kBool: out[key] = v.boolean ? "true" : "false"; break;
      case Json::kNull: out[key] = "null"; break;
      case Json::kReal: {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", v.real);
        out[key] = buf;
        break;
      }
      default: break;  // arrays and objects
    }
  }
  return out;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

int64_t SafetensorsTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  if (!little_endian()) throw std::runtime_error(path + ": safetensors files are little-endian; this host is not");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open the file (missing or unreadable)");
  f.seekg(0, std::ios::end);
  const std::streamoff end = f.tellg();
  if (end < 0) throw std::runtime_error(path + ": cannot read the file size");
  const uint64_t file_size = static_cast<uint64_t>(end);
  if (file_size < 8) {
    throw std::runtime_error(path + ": not a safetensors file: " + std::to_string(file_size) +
                             " bytes, shorter than the 8-byte header length (truncated?)");
  }
  f.seekg(0);
  unsigned char len_bytes[8];
  f.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > file_size - 8) {
    throw std::runtime_error(path + ": header length " + std::to_string(header_len) + " exceeds the " +
                             std::to_string(file_size - 8) + " bytes after it: truncated or not a safetensors file");
  }
  if (header_len > kMaxHeader) {
    throw std::runtime_error(path + ": header length " + std::to_string(header_len) + " is above the " +
                             std::to_string(kMaxHeader) + "-byte limit");
  }
  if (header_len < 2) throw std::runtime_error(path + ": invalid safetensors header: " + std::to_string(header_len) + " bytes");
  std::string text(static_cast<size_t>(header_len), '\0');
  f.read(text.data(), static_cast<std::streamsize>(header_len));
  if (!f) throw std::runtime_error(path + ": cannot read the " + std::to_string(header_len) + "-byte header");
  data_start_ = 8 + header_len;
  data_size_ = file_size - data_start_;

  const Json root = JsonParser(text, path).parse_document();
  if (root.kind != Json::kObject) {
    throw std::runtime_error(path + ": invalid safetensors header: the JSON is " + kind_name(root.kind) +
                             ", not an object");
  }
  for (const auto& [name, entry] : root.object) {
    const std::string where = path + ": invalid safetensors header: ";
    if (name == "__metadata__") {
      if (entry.kind != Json::kObject) throw std::runtime_error(where + "__metadata__ must be an object of strings");
      for (const auto& [key, value] : entry.object) {
        if (value.kind != Json::kString) {
          throw std::runtime_error(where + "__metadata__[\"" + key + "\"] is " + kind_name(value.kind) +
                                   ", not a string");
        }
        metadata_[key] = value.string;
      }
      continue;
    }
    const std::string tensor_where = where + "tensor '" + name + "': ";
    if (entry.kind != Json::kObject) throw std::runtime_error(tensor_where + "entry is not an object");
    const Json *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
    for (const auto& [key, value] : entry.object) {
      if (key == "dtype") dtype = &value;
      if (key == "shape") shape = &value;
      if (key == "data_offsets") offsets = &value;
    }
    if (dtype == nullptr || dtype->kind != Json::kString) throw std::runtime_error(tensor_where + "no string 'dtype'");
    if (shape == nullptr || shape->kind != Json::kArray) throw std::runtime_error(tensor_where + "no array 'shape'");
    if (offsets == nullptr || offsets->kind != Json::kArray || offsets->array.size() != 2) {
      throw std::runtime_error(tensor_where + "no 'data_offsets' [begin, end]");
    }
    SafetensorsTensor t;
    t.dtype = dtype->string;
    const size_t item = dtype_size(t.dtype);
    if (item == 0) throw std::runtime_error(tensor_where + "unknown dtype '" + t.dtype + "'");
    uint64_t count = 1;
    for (const Json& d : shape->array) {
      if (d.kind != Json::kInt || d.integer < 0) {
        throw std::runtime_error(tensor_where + "shape entries must be non-negative integers");
      }
      const uint64_t dim = static_cast<uint64_t>(d.integer);
      if (dim != 0 && count > (std::numeric_limits<uint64_t>::max() / 16) / dim) {
        throw std::runtime_error(tensor_where + "shape too large");
      }
      count *= dim;
      t.shape.push_back(d.integer);
    }
    for (const Json& o : offsets->array) {
      if (o.kind != Json::kInt || o.integer < 0) {
        throw std::runtime_error(tensor_where + "data_offsets must be non-negative integers");
      }
    }
    t.begin = static_cast<uint64_t>(offsets->array[0].integer);
    t.end = static_cast<uint64_t>(offsets->array[1].integer);
    if (t.begin > t.end) throw std::runtime_error(tensor_where + "data_offsets begin > end");
    if (t.end > data_size_) {
      throw std::runtime_error(path + ": tensor '" + name + "' data_offsets [" + std::to_string(t.begin) + ", " +
                               std::to_string(t.end) + "] go past the " + std::to_string(data_size_) +
                               " data bytes of the file (truncated?)");
    }
    if (t.end - t.begin != count * item) {
      throw std::runtime_error(tensor_where + std::to_string(t.end - t.begin) + " bytes for shape " +
                               shape_string(t.shape) + " of " + t.dtype + " (" + std::to_string(count * item) +
                               " expected)");
    }
    tensors_.emplace(name, std::move(t));
  }
}

const SafetensorsTensor& SafetensorsFile::tensor(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw std::runtime_error(path_ + ": no tensor '" + name + "' in the file");
  return it->second;
}

std::vector<float> SafetensorsFile::read_floats(const std::string& name) const {
  const SafetensorsTensor& t = tensor(name);
  if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16") {
    throw std::runtime_error(path_ + ": tensor '" + name + "' has dtype " + t.dtype +
                             ", expected a float tensor (F32, F16 or BF16)");
  }
  const uint64_t bytes = t.end - t.begin;
  std::string raw(static_cast<size_t>(bytes), '\0');
  if (bytes > 0) {
    std::ifstream f(path_, std::ios::binary);
    if (!f) throw std::runtime_error(path_ + ": cannot open the file (missing or unreadable)");
    f.seekg(static_cast<std::streamoff>(data_start_ + t.begin));
    f.read(raw.data(), static_cast<std::streamsize>(bytes));
    if (!f || static_cast<uint64_t>(f.gcount()) != bytes) {
      throw std::runtime_error(path_ + ": tensor '" + name + "': the file ends before its data (truncated)");
    }
  }
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<float> out(n);
  if (t.dtype == "F32") {
    if (n) std::memcpy(out.data(), raw.data(), n * 4);
  } else {
    const bool half = t.dtype == "F16";
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      out[i] = half ? half_to_float(h) : bf16_to_float(h);
    }
  }
  return out;
}

std::vector<float> SafetensorsFile::read_floats(const std::string& name, const std::vector<int64_t>& shape) const {
  const SafetensorsTensor& t = tensor(name);
  if (t.shape != shape) {
    throw std::runtime_error(path_ + ": tensor '" + name + "' has shape " + shape_string(t.shape) + ", expected " +
                             shape_string(shape));
  }
  return read_floats(name);
}

}  // namespace mobpose
