#include "params.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace mobpose_bench {

Params Params::Defaults() {
  Params p;
  p.AddString("graph", "", "path to the .tflite model (the tflite backend)");
  p.AddString("backend", "tflite",
              "what runs: tflite (the model), core (the C++ core: --core), or spin (a busy loop of --spin_ms, to "
              "check the pacing)");
  p.AddInt("num_runs", 1000, "timed inferences (at most; --max_secs may stop earlier)");
  p.AddInt("warmup_runs", 10, "inferences before the timed ones, back to back, not counted");
  p.AddFloat("max_secs", 150.0, "stop the timed runs after this many seconds (0: no limit)");
  p.AddFloat("input_fps", 30.0, "frames arrive at this rate and each inference starts when its frame arrives; 0: back to back");
  p.AddInt("num_threads", 1, "CPU threads (the interpreter's and XNNPACK's)");
  p.AddString("delegate", "xnnpack", "gpu (the TFLite GPU delegate), xnnpack, or none (the built-in CPU kernels)");
  p.AddString("gpu_precision", "fp16", "with --delegate=gpu: fp16 (precision loss allowed, the phone default) or f32");
  p.AddString("input_file", "", "raw bytes of the input tensor(s), in order; empty: random input (--random_seed)");
  p.AddInt("random_seed", 1, "seed of the random input");
  p.AddString("result_file", "", "also write the summary record as JSON to this file");
  p.AddString("output_file", "", "write the raw bytes of the output tensor(s) after the last run (for parity checks)");
  p.AddString("tflite_lib", "", "the shared library with the TfLite C API (default: $MOBPOSE_TFLITE_LIB, else libtensorflowlite_c.so)");
  p.AddString("gpu_delegate_lib", "", "the shared library with TfLiteGpuDelegateV2Create (default: --tflite_lib's, else libtensorflowlite_gpu_delegate.so)");
  p.AddString("core", "softargmax",
              "the core backend's work: softargmax (Taylor soft-argmax), mqa (attention with the prior), prm (the "
              "native PRM's streaming step on --graph=PRM.safetensors)");
  p.AddString("core_shape", "",
              "softargmax: JxDxHxW (default 18x32x32x32); mqa: BxHxNxD (batch, heads, tokens, head width; default "
              "1x8x81x16)");
  p.AddString("softargmax_mode", "taylor", "softargmax: taylor, taylor_clamped or exact");
  p.AddString("prior", "mul", "mqa: the prior's form, mul or add");
  p.AddBool("causal", false, "mqa: causal attention");
  p.AddFloat("spin_ms", 5.0, "the spin backend: milliseconds of busy work per inference");
  p.AddBool("dry_run", false, "load the model and the input, run one inference, report, time nothing");
  p.AddBool("help", false, "print this usage and exit");
  return p;
}

void Params::Add(const std::string& name, Value value) {
  if (!values_.count(name)) order_.push_back(name);
  values_[name] = std::move(value);
}

Params::Value Params::Make(Type type, const std::string& usage) {
  Value v;
  v.type = type;
  v.usage = usage;
  return v;
}

void Params::AddInt(const std::string& name, int64_t value, const std::string& usage) {
  Value v = Make(Type::kInt, usage);
  v.i = value;
  Add(name, v);
}
void Params::AddFloat(const std::string& name, double value, const std::string& usage) {
  Value v = Make(Type::kFloat, usage);
  v.f = value;
  Add(name, v);
}
void Params::AddBool(const std::string& name, bool value, const std::string& usage) {
  Value v = Make(Type::kBool, usage);
  v.b = value;
  Add(name, v);
}
void Params::AddString(const std::string& name, const std::string& value, const std::string& usage) {
  Value v = Make(Type::kString, usage);
  v.s = value;
  Add(name, v);
}

bool Params::Parse(int argc, const char* const* argv, std::string* error) {
  for (int k = 1; k < argc; ++k) {
    std::string arg = argv[k];
    if (arg.rfind("--", 0) != 0) {
      *error = "unexpected argument '" + arg + "' (flags are --name=value)";
      return false;
    }
    std::string body = arg.substr(2);
    size_t eq = body.find('=');
    std::string name = body.substr(0, eq);
    auto it = values_.find(name);
    if (it == values_.end()) {
      *error = "unknown flag --" + name + " (--help lists them)";
      return false;
    }
    Value& v = it->second;
    if (eq == std::string::npos) {
      if (v.type != Type::kBool) {
        *error = "--" + name + " needs a value (--" + name + "=...)";
        return false;
      }
      v.b = true;
      continue;
    }
    std::string text = body.substr(eq + 1);
    char* end = nullptr;
    errno = 0;
    switch (v.type) {
      case Type::kInt: {
        long long x = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno == ERANGE) {
          *error = "--" + name + " takes an integer, got '" + text + "'";
          return false;
        }
        v.i = x;
        break;
      }
      case Type::kFloat: {
        double x = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(x)) {
          *error = "--" + name + " takes a finite number, got '" + text + "'";
          return false;
        }
        v.f = x;
        break;
      }
      case Type::kBool:
        if (text == "true" || text == "1") {
          v.b = true;
        } else if (text == "false" || text == "0") {
          v.b = false;
        } else {
          *error = "--" + name + " takes true or false, got '" + text + "'";
          return false;
        }
        break;
      case Type::kString:
        v.s = text;
        break;
    }
  }
  return true;
}

const Params::Value& Params::Get(const std::string& name, Type type) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.type != type) throw std::logic_error("no flag --" + name + " of that type");
  return it->second;
}
int64_t Params::GetInt(const std::string& name) const { return Get(name, Type::kInt).i; }
double Params::GetFloat(const std::string& name) const { return Get(name, Type::kFloat).f; }
bool Params::GetBool(const std::string& name) const { return Get(name, Type::kBool).b; }
const std::string& Params::GetString(const std::string& name) const { return Get(name, Type::kString).s; }

static std::string Shown(const Params& p, const std::string& name, Params::Type type) {
  std::ostringstream os;
  switch (type) {
    case Params::Type::kInt: os << p.GetInt(name); break;
    case Params::Type::kFloat: os << p.GetFloat(name); break;
    case Params::Type::kBool: os << (p.GetBool(name) ? "true" : "false"); break;
    case Params::Type::kString: os << p.GetString(name); break;
  }
  return os.str();
}

std::string Params::Usage() const {
  static const char* kTypes[] = {"int", "float", "bool", "string"};
  std::ostringstream os;
  for (const auto& name : order_) {
    const Value& v = values_.at(name);
    os << "  --" << name << "=" << Shown(*this, name, v.type) << "  (" << kTypes[static_cast<int>(v.type)] << ")  "
       << v.usage << "\n";
  }
  return os.str();
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string Params::ToJsonMembers() const {
  std::ostringstream os;
  bool first = true;
  for (const auto& name : order_) {
    const Value& v = values_.at(name);
    if (name == "help") continue;
    os << (first ? "" : ", ") << JsonString(name) << ": ";
    first = false;
    if (v.type == Type::kString) {
      os << JsonString(v.s);
    } else {
      os << Shown(*this, name, v.type);
    }
  }
  return os.str();
}

}  // namespace mobpose_bench
