// Typed benchmark parameters: every flag has a type, a default and a usage string (LiteRT benchmark_model's
// shape). Flags are written --name=value; --help prints the usage of every flag.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mobpose_bench {

class Params {
 public:
  enum class Type { kInt, kFloat, kBool, kString };

  // The harness's flags with their defaults (see README.md, "Flags").
  static Params Defaults();

  void AddInt(const std::string& name, int64_t value, const std::string& usage);
  void AddFloat(const std::string& name, double value, const std::string& usage);
  void AddBool(const std::string& name, bool value, const std::string& usage);
  void AddString(const std::string& name, const std::string& value, const std::string& usage);

  // Parses argv[1..]: --name=value (a bare --name sets a bool to true). Returns false and fills `error` with a
  // message naming the flag for an unknown flag, a missing value or a value of the wrong type.
  bool Parse(int argc, const char* const* argv, std::string* error);

  int64_t GetInt(const std::string& name) const;
  double GetFloat(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  const std::string& GetString(const std::string& name) const;
  bool Has(const std::string& name) const { return values_.count(name) != 0; }

  // One line per flag: --name=<default> (type) usage.
  std::string Usage() const;
  // Every flag's current value, as JSON members ("name": value, ...).
  std::string ToJsonMembers() const;

 private:
  struct Value {
    Type type = Type::kInt;
    int64_t i = 0;
    double f = 0.0;
    bool b = false;
    std::string s;
    std::string usage;
  };
  const Value& Get(const std::string& name, Type type) const;
  void Add(const std::string& name, Value value);
  static Value Make(Type type, const std::string& usage);
  std::map<std::string, Value> values_;
  std::vector<std::string> order_;
};

// JSON string escaping (quotes included).
std::string JsonString(const std::string& s);

}  // namespace mobpose_bench
