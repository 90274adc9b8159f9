// The line-search fast path of a native landscape, for BatchLBFGS.
#pragma once

#include <memory>

#include "losstopo/landscape.hpp"
#include "losstopo/lbfgs.hpp"

namespace losstopo {

// Value-only line searches on `ls` evaluate trials from the first layer's products
// of the lines, prepared once per iteration (see Landscape::prepare_lines). When the
// products would not fit options().line_cache_bytes, prepare() declines and the
// optimizer evaluates the trial points in full.
template <typename T>
LineFunction<T> line_function(const Landscape<T>& ls) {
  auto cache = std::make_shared<LineCache<T>>();
  LineFunction<T> lf;
  lf.prepare = [&ls, cache](const T* X, const T* Dir, int64_t R) {
    return ls.prepare_lines(X, Dir, R, *cache);
  };
  lf.values = [&ls, cache](const int64_t* lines, const T* u, int64_t n, T* f) {
    ls.line_values(*cache, lines, u, n, f);
  };
  return lf;
}

}  // namespace losstopo
