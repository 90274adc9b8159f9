// The settings structs of the core as Python classes. Each is built from keyword
// arguments (unknown names refused), its fields are attributes, choices are strings,
// and validate() is the C++ one: the single place of the rules and their messages.
#include "common.hpp"
#include "losstopo/path.hpp"
#include "losstopo/sgd.hpp"

using namespace losstopo_py;

namespace {

// The constructor S(**kwargs): default settings, then each keyword set as an
// attribute (unknown names refused).
template <typename S>
auto from_kwargs(const char* name) {
  return py::init([name](const py::kwargs& kw) {
    py::object self = py::cast(S());
    for (auto item : kw) {
      const std::string key = item.first.cast<std::string>();
      if (!py::hasattr(self, key.c_str()))
        throw std::invalid_argument(std::string(name) + ": unknown setting '" + key + "'");
      self.attr(key.c_str()) = item.second;
    }
    return self.cast<S>();
  });
}

template <typename E>
E choose(const std::string& v, std::initializer_list<std::pair<const char*, E>> options,
         const char* name) {
  std::string names;
  for (const auto& o : options) {
    if (v == o.first) return o.second;
    names += (names.empty() ? "'" : ", '") + std::string(o.first) + "'";
  }
  throw std::invalid_argument(std::string(name) + ": expected one of " + names + ", got '" + v +
                              "'");
}

}  // namespace

void bind_settings(py::module_& m) {
  py::class_<GoldenParams> golden(m, "GoldenParams", "Golden-section line search settings.");
  golden.def(py::init<>())
      .def_readwrite("init", &GoldenParams::init)
      .def_readwrite("expand", &GoldenParams::expand)
      .def_readwrite("xtol", &GoldenParams::xtol)
      .def_readwrite("ftol", &GoldenParams::ftol)
      .def_readwrite("max_evals", &GoldenParams::max_evals)
      .def("validate", &GoldenParams::validate);

  py::class_<WolfeParams> wolfe(m, "WolfeParams", "Strong-Wolfe line search settings.");
  wolfe.def(py::init<>())
      .def_readwrite("c1", &WolfeParams::c1)
      .def_readwrite("c2", &WolfeParams::c2)
      .def_readwrite("max_evals", &WolfeParams::max_evals)
      .def_readwrite("max_step_factor", &WolfeParams::max_step_factor)
      .def("validate", &WolfeParams::validate);

  py::class_<LBFGSParams> lbfgs(m, "LBFGSParams", "Batched L-BFGS settings.");
  lbfgs.def(from_kwargs<LBFGSParams>("LBFGSParams"))
      .def_readwrite("history", &LBFGSParams::history)
      .def_readwrite("max_iter", &LBFGSParams::max_iter)
      .def_readwrite("gtol", &LBFGSParams::gtol)
      .def_readwrite("ftol", &LBFGSParams::ftol)
      .def_readwrite("min_cos", &LBFGSParams::min_cos)
      .def_readwrite("min_shrink", &LBFGSParams::min_shrink)
      .def_readwrite("carry_lines", &LBFGSParams::carry_lines)
      .def_readwrite("golden", &LBFGSParams::golden)
      .def_readwrite("wolfe", &LBFGSParams::wolfe)
      .def_property(
          "line_search",
          [](const LBFGSParams& p) {
            return p.line_search == LineSearchKind::Golden ? "golden" : "strong_wolfe";
          },
          [](LBFGSParams& p, const std::string& v) {
            p.line_search = choose<LineSearchKind>(
                v, {{"golden", LineSearchKind::Golden}, {"strong_wolfe", LineSearchKind::StrongWolfe}},
                "line_search");
          })
      .def("validate", &LBFGSParams::validate);

  py::class_<SGDParams> sgd(m, "SGDParams", "Minibatch SGD settings.");
  sgd.def(from_kwargs<SGDParams>("SGDParams"))
      .def_readwrite("lr", &SGDParams::lr)
      .def_readwrite("momentum", &SGDParams::momentum)
      .def_readwrite("batch_size", &SGDParams::batch_size)
      .def_readwrite("shared_order", &SGDParams::shared_order)
      .def("validate", &SGDParams::validate);

  py::class_<PathParams> path(m, "PathParams", "FourierPathFinder settings.");
  path.def(from_kwargs<PathParams>("PathParams"))
      .def_readwrite("n_modes", &PathParams::n_modes)
      .def_readwrite("n_points", &PathParams::n_points)
      .def_readwrite("lam", &PathParams::lam)
      .def_readwrite("temperature", &PathParams::temperature)
      .def_readwrite("auto_temperature", &PathParams::auto_temperature)
      .def_readwrite("steps", &PathParams::steps)
      .def_readwrite("lr", &PathParams::lr)
      .def_readwrite("beta1", &PathParams::beta1)
      .def_readwrite("beta2", &PathParams::beta2)
      .def_readwrite("eps", &PathParams::eps)
      .def_readwrite("lbfgs", &PathParams::lbfgs)
      .def_readwrite("batch_size", &PathParams::batch_size)
      .def_readwrite("batch_seed", &PathParams::batch_seed)
      .def_property(
          "objective",
          [](const PathParams& p) {
            return p.objective == PathObjective::Sum          ? "sum"
                   : p.objective == PathObjective::SumSquares ? "sum_squares"
                                                              : "minimax";
          },
          [](PathParams& p, const std::string& v) {
            p.objective = choose<PathObjective>(v,
                                                {{"sum", PathObjective::Sum},
                                                 {"sum_squares", PathObjective::SumSquares},
                                                 {"minimax", PathObjective::Minimax}},
                                                "objective");
          })
      .def_property(
          "curve",
          [](const PathParams& p) {
            return p.curve == PathCurve::Fourier  ? "fourier"
                   : p.curve == PathCurve::Bezier ? "bezier"
                                                  : "polychain";
          },
          [](PathParams& p, const std::string& v) {
            p.curve = choose<PathCurve>(v,
                                        {{"fourier", PathCurve::Fourier},
                                         {"bezier", PathCurve::Bezier},
                                         {"polychain", PathCurve::Polychain}},
                                        "curve");
          })
      .def_property(
          "optimizer",
          [](const PathParams& p) { return p.optimizer == PathOptimizer::Adam ? "adam" : "lbfgs"; },
          [](PathParams& p, const std::string& v) {
            p.optimizer = choose<PathOptimizer>(
                v, {{"adam", PathOptimizer::Adam}, {"lbfgs", PathOptimizer::LBFGS}}, "optimizer");
          })
      .def("validate", &PathParams::validate);
}
