// A minimal checker for the C++ tests: counts checks, prints the first failures, and closes with the
// plain "N passed, N failed" line that CI reads.
#pragma once

#include <cmath>
#include <cstdarg>
#include <cstdio>

class Test {
 public:
  // Records one check; prints the message (printf format) when it fails.
  bool check(bool ok, const char* fmt, ...) __attribute__((format(printf, 3, 4))) {
    if (ok) {
      ++passed_;
      return true;
    }
    ++failed_;
    if (failed_ <= 25) {
      std::va_list args;
      va_start(args, fmt);
      std::fputs("FAIL: ", stdout);
      std::vprintf(fmt, args);
      std::fputs("\n", stdout);
      va_end(args);
    }
    return false;
  }
  // |got - want| <= tol; a NaN or Inf on one side only always fails, the same on both passes.
  bool check_close(double got, double want, double tol, const char* fmt, ...)
      __attribute__((format(printf, 5, 6))) {
    bool ok;
    if (std::isnan(want) || std::isnan(got)) {
      ok = std::isnan(want) && std::isnan(got);
    } else if (std::isinf(want) || std::isinf(got)) {
      ok = want == got;
    } else {
      ok = std::fabs(got - want) <= tol;
    }
    if (ok) {
      ++passed_;
      return true;
    }
    ++failed_;
    if (failed_ <= 25) {
      std::va_list args;
      va_start(args, fmt);
      std::fputs("FAIL: ", stdout);
      std::vprintf(fmt, args);
      std::printf(": got %.9g want %.9g (tol %.3g)\n", got, want, tol);
      va_end(args);
    }
    return false;
  }
  int finish(const char* name) const {
    std::printf("%s: %ld passed, %ld failed\n", name, passed_, failed_);
    return failed_ == 0 ? 0 : 1;
  }

 private:
  long passed_ = 0, failed_ = 0;
};
